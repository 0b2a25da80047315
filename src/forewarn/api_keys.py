"""API keys and placeholder secrets: the one implementation every service with an HTTP API uses.

A service's options section inherits :class:`ApiKeyOptions` (the ``api_keys`` field) and its settings
inherit :class:`ApiKeySettings`, naming that section in ``api_key_section``. The environment variable is
then ``FOREWARN_<SECTION>__API_KEYS``: one key or several, comma-separated (a JSON list works too). In
development an unset value means the documented dev key :data:`DEV_API_KEY`; in production the service
refuses to start unless real keys are set.

Deploy files ship secrets as :data:`DEPLOY_PLACEHOLDER` until the deploy pipeline fills them in; a setting
listed in ``placeholder_checked_settings`` that still holds it refuses to load outside development, so a
forgotten secret stops the service at start instead of failing every delivery later.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from forewarn.settings import ForewarnSettings

DEV_API_KEY = "forewarn-dev-key"
"""The key a development service accepts when no keys are configured. Never valid in production."""

# Values people paste while setting things up; a production service holding one of them is misconfigured.
PLACEHOLDER_KEYS = frozenset(
    {DEV_API_KEY, "changeme", "change-me", "change_me", "placeholder", "secret", "password", "dev", "test",
     "xxx", "todo"}
)
MIN_PRODUCTION_KEY_LENGTH = 16
DEPLOY_PLACEHOLDER = "REPLACE_ME"
"""The marker the shipped deploy files (k8s/overlays/prod/secrets) hold where a real secret goes."""

_KEY_HINT = "e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def split_keys(value: Any) -> Any:
    """Environment text to a list of keys: comma-separated, or a JSON list when it starts with ``[``."""
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


class ApiKeyOptions(BaseModel):
    """The ``api_keys`` field of a service's options section."""

    # NoDecode: the environment value is comma-separated text, split by _split_keys (not JSON-decoded).
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted values of the X-API-Key header (comma-separated in the environment). "
        f"Empty in development means the dev key {DEV_API_KEY!r}; required in production.",
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
    def _keys_fit_the_environment(self) -> Self:
        if self.environment != "production":
            return self
        variable = self.env_name("api_keys")
        keys = [key.get_secret_value() for key in self._api_key_options().api_keys]
        if not keys:
            raise ValueError(
                f"{variable} is not set, and production needs API keys. Set it to one or more "
                f"comma-separated random keys, {_KEY_HINT}"
            )
        for position, key in enumerate(keys):
            if (key.strip().lower() in PLACEHOLDER_KEYS or len(key) < MIN_PRODUCTION_KEY_LENGTH
                    or holds_placeholder(key)):
                raise ValueError(
                    f"{variable} entry {position + 1} is a placeholder or shorter than "
                    f"{MIN_PRODUCTION_KEY_LENGTH} characters; production needs random keys, {_KEY_HINT}"
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

    def accepted_keys(self) -> tuple[bytes, ...]:
        """The keys this service accepts, as bytes for constant-time comparison."""
        keys = [key.get_secret_value() for key in self._api_key_options().api_keys]
        if not keys and self.environment != "production":
            keys = [DEV_API_KEY]
        return tuple(key.encode() for key in keys)
