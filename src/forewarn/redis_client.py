"""The one place a Redis client is made: every service, command and bench connects through :func:`connect`,
so TLS and the ACL user come from :class:`forewarn.settings.RedisSettings` and never from a service's code.

The password travels as a separate :class:`~pydantic.SecretStr` field rather than inside the URL: a URL is
printed in logs and error messages, a ``SecretStr`` is not (redis-py's own errors name host and port only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from forewarn.errors import UserError

if TYPE_CHECKING:
    import redis

    from forewarn.settings import RedisSettings

TLS_SCHEME = "rediss"


def connection_options(settings: RedisSettings) -> dict[str, Any]:
    """The keyword arguments ``redis.Redis.from_url`` gets on top of the URL (pure, for tests)."""
    scheme = urlsplit(settings.url).scheme
    if settings.ssl_ca_certs and scheme != TLS_SCHEME:
        raise UserError(f"FOREWARN_REDIS__SSL_CA_CERTS is set but the Redis URL's scheme is {scheme}://, which is "
                        f"plaintext; use {TLS_SCHEME}://host:port/db, or unset FOREWARN_REDIS__SSL_CA_CERTS")
    options: dict[str, Any] = {}
    if settings.username:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    if scheme == TLS_SCHEME:
        # Verify the server against its CA and its name: the certificates are issued for 127.0.0.1 and
        # localhost locally, for the service's DNS name in production.
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = True
        if settings.ssl_ca_certs:
            options["ssl_ca_certs"] = settings.ssl_ca_certs
    return options


def connect(settings: RedisSettings, **kwargs: Any) -> redis.Redis:
    """A client for ``settings`` (URL, ACL user, TLS); ``kwargs`` go to redis-py (timeouts,
    ``decode_responses``). Connects lazily, at the first command, like redis-py itself."""
    import redis

    return redis.Redis.from_url(settings.url, **{**connection_options(settings), **kwargs})
