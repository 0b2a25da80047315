"""Settings of the ingest service: ``FOREWARN_INGEST__*`` on top of the shared Kafka settings.

API keys: ``FOREWARN_INGEST__API_KEYS`` holds the accepted keys as a JSON list of
``{"name", "roles", "key_sha256"}`` entries; sending readings needs the plant role. In development an
unset value means the documented development keys (:data:`DEV_API_KEY`, ``forewarn-dev-plant``, ...); in
production the service refuses to start unless real hashed keys are set (forewarn.api_keys, shared by
every service with an API).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from forewarn.api_keys import DEV_API_KEY, ApiKeyOptions, ApiKeySettings

__all__ = ["DEV_API_KEY", "IngestOptions", "IngestSettings"]


class IngestOptions(ApiKeyOptions):
    host: str = Field(
        "127.0.0.1",
        description="Address to bind: loopback by default; the container images set 0.0.0.0 (the port is "
        "published from outside, and docker-compose publishes it on 127.0.0.1 only).",
    )
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    # api_keys (FOREWARN_INGEST__API_KEYS) comes from ApiKeyOptions.
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


class IngestSettings(ApiKeySettings):
    api_key_section: ClassVar[str] = "ingest"
    ingest: IngestOptions = IngestOptions()
