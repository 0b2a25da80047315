"""Kafka in the secure profile: the broker's listeners, its SCRAM users, and the ACL table.

One SASL_SSL listener (SCRAM-SHA-512, the server certificate from the local CA) serves clients and the
broker itself; the KRaft controller listener is SASL_SSL too, with PLAIN and one user (``admin``) defined in
the broker's own properties file: SCRAM users live in the metadata log, which the controller must already
serve before it can check them, so the controller cannot use SCRAM. Nothing on the broker speaks plain text.

``admin`` is the only super user. Its SCRAM credential is written at storage format time (the broker needs
one user before any can be added); every other principal of :data:`forewarn.stack.secure.KAFKA_USERS` gets
its credential through the Admin API on each ``stack up`` (an upsert, so a rotated password takes effect).
Each service then may touch only what :data:`ACCESS` grants it (``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import SecretStr

from forewarn import topics
from forewarn.settings import KafkaSettings
from forewarn.stack.config import StackSettings

MECHANISM: Final = "SCRAM-SHA-512"
SCRAM_ITERATIONS: Final = 8192
AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Every range reader of the project (forewarn.kafka.reading) names this group; it never commits, but
# librdkafka still looks up the group's coordinator, which needs DESCRIBE on the group.
RANGE_READER_GROUP: Final = "forewarn-range-reader"
FEATURES_APP_ID: Final = "forewarn-features"  # faust's app id: its consumer group and internal topics' prefix


@dataclass(frozen=True)
class Access:
    """What one principal may do: topics it reads and writes (names before the settings' prefix), group
    id prefixes it may join, and topic name prefixes it owns outright (faust's internal topics)."""

    reads: frozenset[str]
    writes: frozenset[str]
    group_prefixes: tuple[str, ...]
    owned_topic_prefixes: tuple[str, ...] = field(default=())


def _access(reads: Iterable[str], writes: Iterable[str], groups: Iterable[str],
            owned: Iterable[str] = ()) -> Access:
    return Access(frozenset(reads), frozenset(writes), (*groups, RANGE_READER_GROUP), tuple(owned))


T = topics
ACCESS: Final[Mapping[str, Access]] = {
    "ingest": _access(reads=(), writes=(T.SENSOR_READINGS, T.SENSOR_READINGS_DLQ), groups=()),
    "features": _access(reads=(T.SENSOR_READINGS,), writes=(T.FEATURE_VECTORS, T.SENSOR_READINGS_DLQ),
                        groups=(FEATURES_APP_ID,), owned=(FEATURES_APP_ID,)),
    "scorer": _access(reads=(T.FEATURE_VECTORS,), writes=(T.RISK_SCORES,), groups=("forewarn-scorer",)),
    # alerts is read back too: the state rebuild after Redis lost it replays what was published.
    "alerter": _access(reads=(T.RISK_SCORES, T.MODEL_HEALTH, T.ALERTS),
                       writes=(T.ALERTS, T.ALERTS_DLQ, T.FEEDBACK, T.AUDIT), groups=("forewarn-alerter",)),
    "monitor": _access(reads=(T.FEATURE_VECTORS, T.RISK_SCORES, T.ALERTS, T.FEEDBACK, T.GROUND_TRUTH),
                       writes=(T.MODEL_HEALTH, T.AUDIT), groups=("forewarn-monitor",)),
    # The training chain and the CLI: `etl stream` (Spark names its groups spark-kafka-source-*), labels
    # from the plant (`forewarn sim --truth kafka`, imports), `audit verify | trace`, the health gate, and
    # an operator looking into the dead-letter topics.
    "retrain": _access(reads=(T.SENSOR_READINGS, T.GROUND_TRUTH, T.FEEDBACK, T.ALERTS, T.MODEL_HEALTH, T.AUDIT,
                              T.SENSOR_READINGS_DLQ, T.ALERTS_DLQ),
                       writes=(T.AUDIT, T.GROUND_TRUTH),
                       groups=("spark-kafka-source", "spark-kafka-relation", "forewarn-retrain")),
}


def broker_properties(*, host: str, port: int, controller_port: int, keystore: str, truststore: str,
                      admin_password: str) -> list[str]:
    """The broker's listener and security lines (the properties file holding them is 0600)."""
    scram = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" ' \
            f'password="{admin_password}";'
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" ' \
            f'password="{admin_password}" user_admin="{admin_password}";'
    return [
        f"listeners=SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=SASL_SSL://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name=SASL_SSL",
        f"listener.name.sasl_ssl.sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={scram}",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={truststore}",
        f"authorizer.class.name={AUTHORIZER}",
        "super.users=User:admin",
        "allow.everyone.if.no.acl.found=false",
    ]


def format_scram_argument(admin_password: str) -> str:
    """``kafka-storage format --add-scram``: the bootstrap user (the only one format needs)."""
    return f"{MECHANISM}=[name=admin,password={admin_password}]"


def client_settings(settings: StackSettings, principal: str) -> KafkaSettings:
    """The KafkaSettings of a client running as ``principal`` against the secure stack's broker."""
    from forewarn.stack import secure

    password = secure.credentials(settings).kafka[principal]
    return settings.kafka.model_copy(update={
        "bootstrap_servers": f"{settings.stack.host}:{settings.stack.kafka_port}",
        "security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM, "sasl_username": principal,
        "sasl_password": SecretStr(password), "ssl_ca_location": str(secure.local_ca(settings).cert)})


def stack_client_settings(settings: StackSettings) -> KafkaSettings:
    """How the stack itself (readiness, topics, users, ACLs) reaches its broker: plain text in the default
    profile, as ``admin`` in the secure one."""
    if settings.stack.profile == "secure":
        return client_settings(settings, "admin")
    return settings.kafka.model_copy(update={
        "bootstrap_servers": f"{settings.stack.host}:{settings.stack.kafka_port}"})


def client_env(settings: StackSettings, principal: str) -> dict[str, str]:
    """The FOREWARN_KAFKA__* environment of :func:`client_settings` (for a process of its own)."""
    kafka = client_settings(settings, principal)
    assert kafka.sasl_password is not None and kafka.ssl_ca_location is not None
    return {
        "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FOREWARN_KAFKA__SECURITY_PROTOCOL": kafka.security_protocol,
        "FOREWARN_KAFKA__SASL_MECHANISM": kafka.sasl_mechanism,
        "FOREWARN_KAFKA__SASL_USERNAME": principal,
        "FOREWARN_KAFKA__SASL_PASSWORD": kafka.sasl_password.get_secret_value(),
        "FOREWARN_KAFKA__SSL_CA_LOCATION": kafka.ssl_ca_location,
    }


@dataclass(frozen=True)
class Grant:
    """One ACL entry in plain terms (mapped to confluent-kafka's AclBinding by :func:`acl_bindings`)."""

    principal: str
    resource: str  # "topic" | "group"
    name: str
    pattern: str  # "literal" | "prefixed"
    operation: str  # "read" | "write" | "all"


def grants(topic_prefix: str = "") -> list[Grant]:
    """Every ACL entry of the table for topics named with ``topic_prefix`` (the settings' prefix). Topics
    are LITERAL on their full names: a PREFIXED ``sensor.readings`` would also grant ``sensor.readings.dlq``."""
    result: list[Grant] = []
    for principal, access in ACCESS.items():
        for topic in sorted(access.reads):
            result.append(Grant(principal, "topic", topic_prefix + topic, "literal", "read"))
        for topic in sorted(access.writes):
            result.append(Grant(principal, "topic", topic_prefix + topic, "literal", "write"))
        for owned in access.owned_topic_prefixes:
            result.append(Grant(principal, "topic", owned, "prefixed", "all"))
        for group in access.group_prefixes:
            result.append(Grant(principal, "group", group, "prefixed", "read"))
    return result


def acl_bindings(topic_prefix: str = "") -> list[Any]:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    resource = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    pattern = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
    operation = {"read": AclOperation.READ, "write": AclOperation.WRITE, "all": AclOperation.ALL}
    return [AclBinding(resource[g.resource], g.name, pattern[g.pattern], f"User:{g.principal}", "*",
                       operation[g.operation], AclPermissionType.ALLOW)
            for g in grants(topic_prefix)]


def _wait_all(futures: Mapping[Any, Any], what: str) -> None:
    from forewarn.errors import UserError

    for key, future in futures.items():
        try:
            future.result(timeout=60)
        except Exception as exc:
            raise UserError(f"Kafka refused to {what} ({key}): {exc}. Is the admin password in "
                            "<state>/secure/credentials.json the one the broker was formatted with?") from exc


def ensure_users(admin: Any, passwords: Mapping[str, str]) -> None:
    """Create or update the SCRAM credential of every principal but ``admin`` (set at format time)."""
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [UserScramCredentialUpsertion(user, info, password.encode())
               for user, password in sorted(passwords.items()) if user != "admin"]
    if upserts:
        _wait_all(admin.alter_user_scram_credentials(upserts), "store SCRAM credentials")


def ensure_acls(admin: Any, topic_prefix: str = "") -> None:
    """Create the table's ACLs for topics named with ``topic_prefix`` (creating one that exists is a no-op)."""
    _wait_all(admin.create_acls(acl_bindings(topic_prefix)), "create ACLs")
