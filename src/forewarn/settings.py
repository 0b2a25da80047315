"""Settings shared by every service and command.

Each service has one settings class that inherits :class:`ForewarnSettings`, so Kafka, Redis and MLflow
are configured the same way everywhere: environment variables with the ``FOREWARN_`` prefix and ``__``
between nested names, e.g. ``FOREWARN_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19092``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal, TypedDict

from pydantic import BaseModel, Field, SecretStr
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
    # Connection security: every Kafka client of the project (confluent-kafka, faust, Spark) takes these
    # from here, through forewarn.kafka.connection_config, so a secure profile changes settings, not code.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers (PLAINTEXT on loopback by default)."
    )
    sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*.")
    sasl_username: str | None = Field(None, description="SASL user of this service.")
    sasl_password: SecretStr | None = Field(None, description="SASL password of this service.")
    ssl_ca_location: str | None = Field(None, description="PEM file of the CA that signed the brokers' certificates.")
    ssl_certificate_location: str | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    ssl_key_location: str | None = Field(None, description="Client private key (PEM) for mutual TLS.")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class RedisSettings(BaseModel):
    url: str = Field(f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0",
                     description="Redis connection URL (rediss:// for TLS). Put no password in it: it is not secret "
                                 "here; use username and password.")
    key_prefix: str = Field("fw", description="Prefix for every key the project writes.")
    # Every Redis client of the project is made by forewarn.redis_client.connect from these, so the secure
    # profile (TLS, one ACL user per service) changes settings, not code.
    username: str | None = Field(None, description="ACL user of this service (unset: Redis' default user).")
    password: SecretStr | None = Field(None, description="Password of the ACL user.")
    ssl_ca_certs: str | None = Field(None, description="PEM file of the CA that signed Redis' certificate "
                                                       "(rediss:// only; unset: the system's trust store).")


class MlflowSettings(BaseModel):
    tracking_uri: str = Field(f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}", description="MLflow tracking server.")
    model_name: str = Field("forewarn-failure", description="Registered model the scorer serves.")
    champion_alias: str = Field("champion", description="Registry alias of the model in production.")


class UvicornTlsOptions(TypedDict, total=False):
    ssl_certfile: str
    ssl_keyfile: str


class TlsSettings(BaseModel):
    """HTTPS of the services' own APIs (the secure profile), in one place: every service's server takes its
    certificate from here, and every client of those APIs verifies against ``ca_file``."""

    http_cert_file: str | None = Field(None, description="Server certificate (PEM, leaf then chain): set with the "
                                                         "key, the service's API serves HTTPS only.")
    http_key_file: str | None = Field(None, description="Private key (PEM) of http_cert_file.")
    ca_file: str | None = Field(None, description="CA (PEM) that clients of the services' HTTPS APIs verify against; "
                                                  "unset: the system's trust store.")

    @property
    def enabled(self) -> bool:
        return bool(self.http_cert_file and self.http_key_file)

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"

    def uvicorn_options(self) -> UvicornTlsOptions:
        """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``: none when TLS is off."""
        if not self.enabled:
            return UvicornTlsOptions()
        return UvicornTlsOptions(ssl_certfile=str(self.http_cert_file), ssl_keyfile=str(self.http_key_file))

    def server_context(self) -> ssl.SSLContext | None:
        """The server side as an SSL context (for servers that take one, e.g. faust's web server)."""
        if not self.enabled:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.http_cert_file), str(self.http_key_file))
        return context

    def client_context(self) -> ssl.SSLContext:
        """What a client of an ``https://`` service URL verifies against (``ca_file``, else the system's)."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()


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
    tls: TlsSettings = TlsSettings()
    asset_config: str = Field(
        "plant", description="Asset config: a shipped name (plant, cmapss, ai4i) or a path to a YAML file."
    )
    log_level: str = Field("INFO", description="Log level of the JSON logs.")


def default_state_dir() -> Path:
    return Path.cwd() / ".forewarn"
