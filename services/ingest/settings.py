"""Settings of the ingest service: ``FOREWARN_INGEST__*`` on top of the shared Kafka settings.

API keys: ``FOREWARN_INGEST__API_KEYS`` holds one key or several, comma-separated (a JSON list works too).
In development an unset value means the documented dev key :data:`DEV_API_KEY`; in production the
service refuses to start unless real keys are set.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from forewarn.settings import ForewarnSettings

DEV_API_KEY = "forewarn-dev-key"
"""The key a development ingest accepts when no keys are configured. Never valid in production."""

# Values people paste while setting things up; a production service holding one of them is misconfigured.
PLACEHOLDER_KEYS = frozenset(
    {DEV_API_KEY, "changeme", "change-me", "change_me", "placeholder", "secret", "password", "dev", "test",
     "xxx", "todo"}
)
MIN_PRODUCTION_KEY_LENGTH = 16


class IngestOptions(BaseModel):
    host: str = Field(
        "127.0.0.1",
        description="Address to bind: loopback by default; the container images set 0.0.0.0 (the port is "
        "published from outside, and docker-compose publishes it on 127.0.0.1 only).",
    )
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    # NoDecode: the environment value is comma-separated text, split by _split_keys (not JSON-decoded).
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted values of the X-API-Key header (comma-separated in the environment). "
        f"Empty in development means the dev key {DEV_API_KEY!r}; required in production.",
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest request body (413 above).")
    max_readings_per_request: int = Field(10_000, ge=1, description="Most readings in one request (413 above).")
    delivery_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="How long Kafka may take to confirm a request's readings before the answer is 503. "
        "Also the producer's message.timeout.ms, so every reading has a definite outcome by then.",
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After (seconds) sent with a 503.")
    access_log: bool = Field(False, description="Log every HTTP request (costly at high request rates).")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value


class IngestSettings(ForewarnSettings):
    ingest: IngestOptions = IngestOptions()

    @model_validator(mode="after")
    def _keys_fit_the_environment(self) -> IngestSettings:
        if self.environment != "production":
            return self
        keys = [key.get_secret_value() for key in self.ingest.api_keys]
        if not keys:
            raise ValueError(
                "FOREWARN_INGEST__API_KEYS is not set, and production needs API keys. Set it to one or more "
                "comma-separated random keys, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        for position, key in enumerate(keys):
            if key.strip().lower() in PLACEHOLDER_KEYS or len(key) < MIN_PRODUCTION_KEY_LENGTH:
                raise ValueError(
                    f"FOREWARN_INGEST__API_KEYS entry {position + 1} is a placeholder or shorter than "
                    f"{MIN_PRODUCTION_KEY_LENGTH} characters; production needs random keys, e.g. from: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return self

    def accepted_keys(self) -> tuple[bytes, ...]:
        """The keys this service accepts, as bytes for constant-time comparison."""
        keys = [key.get_secret_value() for key in self.ingest.api_keys]
        if not keys and self.environment != "production":
            keys = [DEV_API_KEY]
        return tuple(key.encode() for key in keys)
