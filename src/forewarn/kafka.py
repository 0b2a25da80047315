"""A thin edge over confluent-kafka: clients built from settings, with the delivery guarantees the
architecture promises (idempotent producer, acks=all; consumers commit only what they have processed).

Explicit keyword arguments win over the settings-derived defaults, so a service can tune one knob
without restating the rest.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from forewarn.settings import KafkaSettings


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached or did not confirm a delivery in time."""


def producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
    }
    config.update(overrides)
    return Producer(config)


def consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.min.bytes": 1,
    }
    config.update(overrides)
    return Consumer(config)


def consume_ready(consumer: Consumer, max_messages: int, timeout_s: float) -> list[Any]:
    """What is ready now, up to ``max_messages``; when nothing is, wait up to ``timeout_s`` for the first
    message and take what came with it.

    ``consume(n, timeout)`` waits out the whole timeout unless n messages arrive, so under a steady stream
    every batch would spend that wait (50 ms a hop) on every message. Here a batch starts as soon as there is
    anything to do, and under load it grows by itself to what queued while the last one was processed."""
    messages = consumer.consume(max_messages, timeout=0)
    if messages:
        return messages
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, timeout=0)] if max_messages > 1 else [first]


def admin(settings: KafkaSettings, **overrides: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers, **overrides})


def wait_for_topics(settings: KafkaSettings, names: list[str], timeout_s: float = 10.0) -> None:
    """Block until ``names`` exist in the broker's metadata."""
    import time

    client = admin(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        present = set(client.list_topics(timeout=timeout_s).topics)
        if all(name in present for name in names):
            return
        time.sleep(0.1)
    raise KafkaUnavailable(f"topics {names} did not appear within {timeout_s}s")


def message_count(settings: KafkaSettings, topic: str) -> int:
    """Messages in ``topic`` now, from its partitions' watermarks (exact, whatever was consumed)."""
    from confluent_kafka import TopicPartition

    reader = consumer(settings, group_id="forewarn-message-count")
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        reader.close()


def read_all(settings: KafkaSettings, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every message of ``topic`` from its start to the current end, without joining a group."""
    import time

    from confluent_kafka import TopicPartition

    reader = consumer(settings, group_id="forewarn-read-all")
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        assignment = []
        for p in partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        reader.assign(assignment)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout_s
        positions = {tp.partition: tp.offset for tp in assignment}
        while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for message in reader.consume(10_000, timeout=0.5):
                if message.error() is None and message.offset() < ends[message.partition()]:
                    messages.append(message)
                    positions[message.partition()] = message.offset() + 1
        if any(positions[p] < ends[p] for p in ends):
            raise KafkaUnavailable(f"reading {topic} did not reach its end within {timeout_s}s")
        return messages
    finally:
        reader.close()


def count_readings(settings: KafkaSettings, topic: str, timeout_s: float = 60.0) -> int:
    """Readings in a ``sensor.readings``-shaped topic: envelopes count for every reading they hold."""
    from forewarn.readings_wire import decode_value

    return sum(len(decode_value(m.value())) for m in read_all(settings, topic, timeout_s))
