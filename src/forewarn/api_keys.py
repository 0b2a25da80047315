"""API keys with roles, and placeholder secrets: the one settings implementation every service with an
HTTP API uses (the roles and the route guard are :mod:`forewarn.access`).

A service's options section inherits :class:`ApiKeyOptions` (the ``api_keys`` field) and its settings
inherit :class:`ApiKeySettings`, naming that section in ``api_key_section``. The environment variable is
then ``FOREWARN_<SECTION>__API_KEYS``, a JSON list of principals, each with its roles and the SHA-256 of
its key (``forewarn keys new`` makes a key and prints its entry)::

    [{"name": "line-3-gateway", "roles": ["plant"], "key_sha256": "9f86d0..."}]

Each service has its own list (least privilege: the plant gateways' keys are known to ingest only; a
principal that uses several services is listed in each, with the same entry). A principal may appear
twice with two keys while one is rotated out.

In development an unset value means the documented development keys (:data:`DEV_API_KEY` with every role,
and one per role, :data:`~forewarn.access.DEV_ROLE_KEYS`), and a plain key (a string instead of an entry:
comma-separated text works too) is a principal with every role, for quick local setups. Production
refuses to start without entries, with a plain key, or with the hash of a placeholder or development key.

Deploy files ship secrets as :data:`DEPLOY_PLACEHOLDER` until the deploy pipeline fills them in; a setting
listed in ``placeholder_checked_settings`` that still holds it refuses to load outside development, so a
forgotten secret stops the service at start instead of failing every delivery later.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from forewarn.access import DEV_API_KEY, DEV_ROLE_KEYS, AccessControl, KeyHolder, Principal, Role, hash_key
from forewarn.settings import ForewarnSettings

__all__ = ["DEPLOY_PLACEHOLDER", "DEV_API_KEY", "DEV_ROLE_KEYS", "ApiKeyEntry", "ApiKeyOptions",
           "ApiKeySettings", "holds_placeholder", "split_keys"]

# Values people paste while setting things up; a production service holding the hash of one is misconfigured.
PLACEHOLDER_KEYS = frozenset(
    {DEV_API_KEY, *DEV_ROLE_KEYS.values(), "changeme", "change-me", "change_me", "placeholder", "secret",
     "password", "dev", "test", "xxx", "todo", "", "REPLACE_ME", "replace_me"}
)
_PLACEHOLDER_HASHES = frozenset(hash_key(key) for key in PLACEHOLDER_KEYS)
DEPLOY_PLACEHOLDER = "REPLACE_ME"
"""The marker the shipped deploy files (k8s/overlays/prod/secrets) hold where a real secret goes."""

_KEY_HINT = ("make a key and its entry with: forewarn keys new --role ROLE --name NAME, or hash a random key "
             "(e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))') with: "
             "forewarn keys hash --role ROLE --name NAME")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_ALL_ROLES = frozenset(Role)


def split_keys(value: Any) -> Any:
    """Environment text to a list: a JSON list when it starts with ``[``, else comma-separated plain keys."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def holds_placeholder(value: object) -> bool:
    """Whether a setting's value (text, secret, or a list of them) still contains :data:`DEPLOY_PLACEHOLDER`."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return DEPLOY_PLACEHOLDER.lower() in value.lower()
    if isinstance(value, list | tuple):
        return any(holds_placeholder(item) for item in value)
    return False


class ApiKeyEntry(BaseModel):
    """One accepted key: who it authenticates, their roles, and the key's SHA-256 (never the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, description="The principal, as the audit trail names it.")
    roles: list[Role] = Field(min_length=1, description="plant, viewer, operator, engineer (forewarn.access).")
    key_sha256: str = Field(description="Hex SHA-256 of the key (forewarn keys new prints it).")


class ApiKeyOptions(BaseModel):
    """The ``api_keys`` field of a service's options section."""

    # NoDecode: the environment value is split by _split_keys (JSON list, or comma-separated plain keys).
    api_keys: Annotated[list[ApiKeyEntry | SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted X-API-Key values: a JSON list of {name, roles, key_sha256}. Empty in development "
        f"means the development keys ({DEV_API_KEY!r}, and 'forewarn-dev-<role>'); required in production, "
        "where plain keys are refused.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return split_keys(value)


class ApiKeySettings(ForewarnSettings):
    """Settings of a service with API keys: checks them (and placeholder secrets) against the environment."""

    api_key_section: ClassVar[str]
    """Name of the options field (an :class:`ApiKeyOptions`) that holds ``api_keys``, e.g. ``"ingest"``."""
    placeholder_checked_settings: ClassVar[tuple[str, ...]] = ()
    """Settings of that section that must not hold :data:`DEPLOY_PLACEHOLDER` outside development."""

    def _api_key_options(self) -> ApiKeyOptions:
        options = getattr(self, self.api_key_section)
        if not isinstance(options, ApiKeyOptions):
            raise TypeError(f"{type(self).__name__}.{self.api_key_section} does not inherit ApiKeyOptions")
        return options

    def env_name(self, setting: str) -> str:
        """The environment variable of one setting of the section, e.g. ``FOREWARN_INGEST__API_KEYS``."""
        prefix = self.model_config.get("env_prefix", "")
        delimiter = self.model_config.get("env_nested_delimiter") or "__"
        return f"{prefix}{self.api_key_section}{delimiter}{setting}".upper()

    @model_validator(mode="after")
    def _entries_are_well_formed(self) -> Self:
        variable = self.env_name("api_keys")
        owners: dict[str, str] = {}
        for position, entry in enumerate(self._api_key_options().api_keys, start=1):
            if not isinstance(entry, ApiKeyEntry):
                continue
            if not _SHA256_HEX.match(entry.key_sha256.lower()):
                raise ValueError(
                    f"{variable} entry {position} ({entry.name!r}): key_sha256 is not the 64 hex digits of a "
                    f"SHA-256; {_KEY_HINT}"
                )
            digest = entry.key_sha256.lower()
            if owners.setdefault(digest, entry.name) != entry.name:
                raise ValueError(f"{variable} entry {position} ({entry.name!r}) has the key of "
                                 f"{owners[digest]!r}; every principal needs a key of its own")
        return self

    @model_validator(mode="after")
    def _keys_fit_the_environment(self) -> Self:
        if self.environment != "production":
            return self
        variable = self.env_name("api_keys")
        entries = self._api_key_options().api_keys
        if not entries:
            raise ValueError(f"{variable} is not set, and production needs API keys; {_KEY_HINT}")
        for position, entry in enumerate(entries, start=1):
            if not isinstance(entry, ApiKeyEntry):
                raise ValueError(
                    f"{variable} entry {position} is a plain key (or a placeholder); production stores keys "
                    f"hashed, as {{\"name\", \"roles\", \"key_sha256\"}} entries; {_KEY_HINT}"
                )
            if entry.key_sha256.lower() in _PLACEHOLDER_HASHES:
                raise ValueError(
                    f"{variable} entry {position} ({entry.name!r}) is the hash of a placeholder or development "
                    f"key; production needs random keys; {_KEY_HINT}"
                )
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        options = self._api_key_options()
        placeholders = [
            self.env_name(setting) for setting in self.placeholder_checked_settings
            if holds_placeholder(getattr(options, setting))
        ]
        if placeholders:
            raise ValueError(
                f"{', '.join(placeholders)} still {'holds' if len(placeholders) == 1 else 'hold'} the placeholder "
                f"{DEPLOY_PLACEHOLDER!r} from the deploy files. Set the real secret (from your secret store; "
                "see docs/DEPLOYMENT.md, \"Secrets\") or leave the setting unset; placeholders are accepted "
                "only with FOREWARN_ENVIRONMENT=development."
            )
        return self

    def uses_development_keys(self) -> bool:
        """Whether :meth:`access` accepts the documented development keys (nothing configured, not production)."""
        return not self._api_key_options().api_keys and self.environment != "production"

    def access(self) -> AccessControl:
        """The keys this service accepts, each bound to its principal."""
        holders: list[KeyHolder] = []
        for position, entry in enumerate(self._api_key_options().api_keys, start=1):
            if isinstance(entry, ApiKeyEntry):
                principal = Principal(entry.name, frozenset(entry.roles))
                holders.append(KeyHolder(principal, bytes.fromhex(entry.key_sha256)))
            else:  # a plain key: development only (production refused it above)
                holders.append(KeyHolder(Principal(f"plain key {position}", _ALL_ROLES),
                                         bytes.fromhex(hash_key(entry.get_secret_value()))))
        if self.uses_development_keys():
            holders.append(KeyHolder(Principal("dev", _ALL_ROLES), bytes.fromhex(hash_key(DEV_API_KEY))))
            holders.extend(KeyHolder(Principal(f"dev-{role.value}", frozenset({role})), bytes.fromhex(hash_key(key)))
                           for role, key in DEV_ROLE_KEYS.items())
        return AccessControl(holders)
