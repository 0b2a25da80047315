"""Settings of the local stack: ports, folders and versions, all overridable from the environment.

``FOREWARN_STACK__KAFKA_PORT=29092 forewarn stack up`` moves Kafka; clients then need the matching
``FOREWARN_KAFKA__BOOTSTRAP_SERVERS`` (``forewarn stack status`` prints every address).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from forewarn.settings import (
    DEFAULT_KAFKA_CONTROLLER_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_MLFLOW_PORT,
    DEFAULT_REDIS_PORT,
    ForewarnSettings,
)

# Prometheus' and Alertmanager's usual ports (9090, 9093) moved up like the others; 19093 is Kafka's
# controller, so Alertmanager takes the next one.
DEFAULT_PROMETHEUS_PORT = 19090
DEFAULT_ALERTMANAGER_PORT = 19094

KAFKA_VERSION = "4.1.1"
# Must equal the installed pyspark version (pyproject pins pyspark==4.2.0).
SPARK_VERSION = "4.2.0"
# Kafka 4.x logs through slf4j 1.7; this binding routes it to log4j2, which Kafka ships a config for.
LOG4J_SLF4J_BINDING = "org.apache.logging.log4j:log4j-slf4j-impl:2.25.3"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "forewarn"


class StackOptions(BaseModel):
    state_dir: Path = Field(
        Path(".forewarn"), description="Data, logs and PID files of the local stack (relative to the cwd)."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="Downloaded jars, kept outside the repo, by version."
    )
    profile: Literal["default", "secure"] = Field(
        "default", description="default: plaintext on loopback, no passwords (a quick start; protects against "
                               "nothing but other machines). secure: TLS from a local CA, per-service users and "
                               "ACLs on Kafka and Redis, MLflow authentication (docs/SECURITY.md).")
    host: str = Field("127.0.0.1", description="Loopback address every component binds to.")
    kafka_port: int = Field(DEFAULT_KAFKA_PORT, ge=1, le=65535)
    kafka_controller_port: int = Field(DEFAULT_KAFKA_CONTROLLER_PORT, ge=1, le=65535)
    redis_port: int = Field(DEFAULT_REDIS_PORT, ge=1, le=65535)
    mlflow_port: int = Field(DEFAULT_MLFLOW_PORT, ge=1, le=65535)
    prometheus_port: int = Field(DEFAULT_PROMETHEUS_PORT, ge=1, le=65535)
    alertmanager_port: int = Field(DEFAULT_ALERTMANAGER_PORT, ge=1, le=65535)
    scrape_interval_s: int = Field(
        5, ge=1, le=300, description="How often Prometheus scrapes (short locally, so a change shows at once)."
    )
    prometheus_retention: str = Field("3d", description="How long the local Prometheus keeps samples.")
    prometheus_rules_dir: Path = Field(
        Path("deploy/prometheus/rules"), description="Every *.yml here is a Prometheus rule file (relative to the cwd)."
    )
    alert_webhook_url: str | None = Field(
        None, description="Alertmanager posts alerts here (its webhook format); with no Slack either, it drops them."
    )
    alert_slack_webhook_url: SecretStr | None = Field(
        None, description="Alertmanager posts alerts to this Slack webhook."
    )
    alert_slack_channel: str = Field("#forewarn-oncall", description="Slack channel of Alertmanager's messages.")
    kafka_version: str = Field(KAFKA_VERSION, description="org.apache.kafka:kafka_2.13 version from Maven.")
    kafka_heap: str = Field("768m", description="Broker JVM heap (-Xmx).")
    start_timeout_s: float = Field(120.0, gt=0, description="How long `up` waits for each component.")


class StackSettings(ForewarnSettings):
    stack: StackOptions = StackOptions()

    @property
    def state_dir(self) -> Path:
        return self.stack.state_dir.resolve()

    @property
    def secure_dir(self) -> Path:
        """The secure profile's CA, certificates and generated credentials (files 0600)."""
        return self.state_dir / "secure"

    @property
    def prometheus_targets_dir(self) -> Path:
        """Where the local runner writes one JSON file per running service (Prometheus file discovery)."""
        return self.state_dir / "prometheus" / "targets"

    @property
    def kafka_libs_dir(self) -> Path:
        return self.stack.cache_dir.expanduser().resolve() / "kafka" / self.stack.kafka_version / "libs"

    @property
    def spark_kafka_libs_dir(self) -> Path:
        return self.stack.cache_dir.expanduser().resolve() / "spark-sql-kafka" / SPARK_VERSION / "libs"
