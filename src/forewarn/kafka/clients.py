"""confluent-kafka clients built from settings, with the delivery guarantees the architecture promises
(idempotent producer, acks=all; consumers commit only what they have processed).

Configuration has three layers, later ones winning: the project's defaults for the client kind, a
pass-through ``extra_config`` dict (librdkafka names, e.g. from a service's settings), and explicit keyword
overrides in code. Connection and security (bootstrap servers, TLS, SASL) come from
:func:`connection_config` alone, so a secure profile changes settings in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from forewarn.settings import KafkaSettings

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 1_000_000,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
    "fetch.min.bytes": 1,
}


def connection_config(settings: KafkaSettings) -> dict[str, Any]:
    """Where the brokers are and how to talk to them: the one place every client's connection comes from."""
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    protocol = settings.security_protocol
    if protocol != "PLAINTEXT":
        config["security.protocol"] = protocol
    if protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.sasl_mechanism
        if settings.sasl_username is not None:
            config["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl.password"] = settings.sasl_password.get_secret_value()
    if protocol in ("SSL", "SASL_SSL"):
        for key, value in (("ssl.ca.location", settings.ssl_ca_location),
                           ("ssl.certificate.location", settings.ssl_certificate_location),
                           ("ssl.key.location", settings.ssl_key_location)):
            if value is not None:
                config[key] = value
    return config


def client_config(settings: KafkaSettings, defaults: Mapping[str, Any], extra_config: Mapping[str, Any] | None,
                  overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Connection, then defaults, then the pass-through dict, then explicit overrides (the last wins)."""
    return {**connection_config(settings), **defaults, **(extra_config or {}), **overrides}


def producer(settings: KafkaSettings, *, extra_config: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    from confluent_kafka import Producer

    return Producer(client_config(settings, PRODUCER_DEFAULTS, extra_config, overrides))


def consumer(settings: KafkaSettings, group_id: str, *, extra_config: Mapping[str, Any] | None = None,
             **overrides: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer(client_config(settings, {**CONSUMER_DEFAULTS, "group.id": group_id}, extra_config, overrides))


def admin(settings: KafkaSettings, **overrides: Any) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({**connection_config(settings), **overrides})


class _LazyClient:
    """A client created on first use: wiring can build it at start-up without touching the network, and a
    service that never uses it never opens a connection."""

    def __init__(self, create: Callable[[], Any]) -> None:
        self._create = create
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._create()
        return self._client

    def __getattr__(self, name: str) -> Any:  # produce, flush, subscribe, consume, commit, seek, ...
        return getattr(self.client, name)


class LazyProducer(_LazyClient):
    def __init__(self, settings: KafkaSettings, *, extra_config: Mapping[str, Any] | None = None,
                 **overrides: Any) -> None:
        extra = dict(extra_config or {})
        super().__init__(lambda: producer(settings, extra_config=extra, **overrides))


class LazyConsumer(_LazyClient):
    """Closed only if it was created."""

    def __init__(self, settings: KafkaSettings, group_id: str, *, extra_config: Mapping[str, Any] | None = None,
                 **overrides: Any) -> None:
        extra = dict(extra_config or {})
        super().__init__(lambda: consumer(settings, group_id, extra_config=extra, **overrides))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def spark_options(settings: KafkaSettings) -> dict[str, str]:
    """The same connection for Spark's Kafka source (Java client option names, ``kafka.`` prefixed)."""
    options = {"kafka.bootstrap.servers": settings.bootstrap_servers}
    protocol = settings.security_protocol
    if protocol != "PLAINTEXT":
        options["kafka.security.protocol"] = protocol
    if protocol.startswith("SASL_"):
        options["kafka.sasl.mechanism"] = settings.sasl_mechanism
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if settings.sasl_mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        password = settings.sasl_password.get_secret_value() if settings.sasl_password is not None else ""
        options["kafka.sasl.jaas.config"] = (f'{module} required username="{settings.sasl_username or ""}" '
                                             f'password="{password}";')
    if protocol in ("SSL", "SASL_SSL") and settings.ssl_ca_location is not None:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = settings.ssl_ca_location
    return options


def faust_options(settings: KafkaSettings) -> dict[str, Any]:
    """The same connection for a faust app: ``broker`` and, when secured, ``broker_credentials``."""
    options: dict[str, Any] = {
        "broker": ";".join(f"kafka://{b}" for b in settings.bootstrap_servers.split(","))}
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return options
    import ssl

    import faust

    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_ca_location)
        if settings.ssl_certificate_location is not None:
            context.load_cert_chain(settings.ssl_certificate_location, settings.ssl_key_location)
    if protocol.startswith("SASL_"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password is not None else None
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username, password=password, ssl_context=context,
            mechanism=settings.sasl_mechanism)
    else:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options
