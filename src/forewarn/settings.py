"""Settings shared by every service and command.

Each service has one settings class that inherits :class:`ForewarnSettings`, so Kafka, Redis and MLflow
are configured the same way everywhere: environment variables with the ``FOREWARN_`` prefix and ``__``
between nested names, e.g. ``FOREWARN_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19092``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Non-standard default ports so a system-wide Kafka/Redis/MLflow (e.g. one that apt started) never
# collides with the project's own stack.
DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_REDIS_PORT = 16379
DEFAULT_MLFLOW_PORT = 15000


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(
        f"127.0.0.1:{DEFAULT_KAFKA_PORT}", description="Comma-separated host:port list of brokers."
    )
    topic_partitions: int = Field(4, ge=1, description="Partitions for the project's topics.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for the project's topics.")
    topic_prefix: str = Field("", description="Prefix for every topic name (isolates tests and tenants).")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class RedisSettings(BaseModel):
    url: str = Field(f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0", description="Redis connection URL.")
    key_prefix: str = Field("fw", description="Prefix for every key the project writes.")


class MlflowSettings(BaseModel):
    tracking_uri: str = Field(f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}", description="MLflow tracking server.")
    model_name: str = Field("forewarn-failure", description="Registered model the scorer serves.")
    champion_alias: str = Field("champion", description="Registry alias of the model in production.")


class ForewarnSettings(BaseSettings):
    """Base of every service's settings."""

    model_config = SettingsConfigDict(
        env_prefix="FOREWARN_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production"] = Field(
        "development", description="In production, secrets must be set explicitly (no defaults)."
    )
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    mlflow: MlflowSettings = MlflowSettings()
    asset_config: str = Field(
        "plant", description="Asset config: a shipped name (plant, cmapss, ai4i) or a path to a YAML file."
    )
    log_level: str = Field("INFO", description="Log level of the JSON logs.")


def default_state_dir() -> Path:
    return Path.cwd() / ".forewarn"
