"""The trail on the Kafka ``audit`` topic: send records (key: the trail, so each trail stays in order in
one partition), read them back, and keep the topic never compacted and never expired."""

from __future__ import annotations

import json
from typing import Any, Final

from forewarn import topics
from forewarn.settings import KafkaSettings

# The audit topic keeps everything: no time or size limit, and no compaction (which would keep only
# the last record per key, that is per trail). The one definition is in forewarn.topics.
TOPIC_CONFIG: Final[dict[str, str]] = topics.AUDIT_CONFIG


def audit_topic(settings: KafkaSettings) -> str:
    return settings.topic(topics.AUDIT)


class KafkaSender:
    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 5.0) -> None:
        self.settings, self.timeout_s = settings, timeout_s

    @property
    def destination(self) -> str:
        return f"Kafka topic {audit_topic(self.settings)!r}"

    def send(self, records: list[dict[str, Any]]) -> str | None:
        from forewarn import kafka

        topic = audit_topic(self.settings)
        timeout_ms = max(1000, int(self.timeout_s * 1000))
        errors: list[Any] = []
        delivered: list[Any] = []
        try:
            producer = kafka.producer(self.settings, extra_config={
                "message.timeout.ms": timeout_ms, "socket.connection.setup.timeout.ms": min(timeout_ms, 3000),
                "linger.ms": 0})
            # A missing topic would make every record wait out its timeout (topics are not auto-created).
            metadata = producer.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return f"the topic does not exist ({getattr(metadata, 'error', None)}); create it with " \
                       "'forewarn audit init-topic' (or 'forewarn stack up', the topic-init job)"
            for record in records:
                producer.produce(topic, key=str(record["trail"]).encode(),
                                 value=json.dumps(record, sort_keys=True, ensure_ascii=False).encode(),
                                 on_delivery=lambda err, msg: (errors if err else delivered).append(err or msg))
            producer.flush(self.timeout_s + 1)
        except Exception as exc:  # noqa: BLE001 - the local record stands; this says why it is not on Kafka
            return f"{type(exc).__name__}: {exc}"
        if errors:
            return str(errors[0])
        if len(delivered) < len(records):
            return f"{len(records) - len(delivered)} record(s) unconfirmed within {self.timeout_s:.0f} s"
        return None


def read_copies(settings: KafkaSettings, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every trail record on the audit topic (other messages there, e.g. promotion summaries, are skipped)."""
    from forewarn import kafka

    out = []
    for message in kafka.read_all(settings, audit_topic(settings), timeout_s=timeout_s):
        try:
            value = json.loads(message.value())
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict) and {"seq", "trail", "hash", "prev_hash"} <= value.keys():
            out.append(value)
    return out


def topic_config_problems(settings: KafkaSettings, timeout_s: float = 10.0) -> list[str]:
    """Why the topic would lose records (compaction, retention), in words; empty when it keeps them."""
    from confluent_kafka.admin import ConfigResource

    from forewarn import kafka

    topic = audit_topic(settings)
    admin = kafka.admin(settings)
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    config = {name: entry.value for name, entry in future.result(timeout=timeout_s).items()}
    return [f"topic {topic!r} has {name}={config.get(name)!r}, not {wanted!r}: it would drop audit records; fix "
            f"it with 'forewarn audit init-topic'"
            for name, wanted in TOPIC_CONFIG.items() if str(config.get(name)) != wanted]


def ensure_topic(settings: KafkaSettings, timeout_s: float = 30.0) -> str:
    """Create the audit topic with :data:`TOPIC_CONFIG`, or set that config on the existing one."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

    from forewarn import kafka

    topic = audit_topic(settings)
    admin = kafka.admin(settings)
    if topic not in admin.list_topics(timeout=timeout_s).topics:
        (future,) = admin.create_topics([NewTopic(topic, num_partitions=settings.topic_partitions,
                                                  replication_factor=settings.replication_factor,
                                                  config=dict(TOPIC_CONFIG))]).values()
        try:
            future.result(timeout=timeout_s)
            kafka.wait_for_topics(settings, [topic], timeout_s=timeout_s)  # so the next send finds it
            return f"created topic {topic!r} ({', '.join(f'{k}={v}' for k, v in TOPIC_CONFIG.items())})"
        except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine; its config is set below
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in TOPIC_CONFIG.items()])
    (future,) = admin.incremental_alter_configs([resource]).values()
    future.result(timeout=timeout_s)
    return f"topic {topic!r} set to {', '.join(f'{k}={v}' for k, v in TOPIC_CONFIG.items())}"
