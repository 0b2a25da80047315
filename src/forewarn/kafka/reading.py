"""Reading topics outside a consumer group: bounded ranges for rebuilds and replays, and counts.

Every rebuild or replay reader of the project goes through :func:`read_ranges` (the features replay after
a restore, the alerter's state rebuild, tests and benchmarks reading a whole topic): assigned, never
subscribed, never committing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from forewarn.kafka.clients import admin, consumer
from forewarn.kafka.errors import KafkaTimeout, KafkaUnavailable
from forewarn.settings import KafkaSettings

READER_GROUP = "forewarn-range-reader"  # never commits: the name only satisfies the client


def consume_ready(client: Any, max_messages: int, timeout_s: float) -> list[Any]:
    """What is ready now, up to ``max_messages``; when nothing is, wait up to ``timeout_s`` for the first
    message and take what came with it.

    ``consume(n, timeout)`` waits out the whole timeout unless n messages arrive, so under a steady stream
    every batch would spend that wait (50 ms a hop) on every message. Here a batch starts as soon as there is
    anything to do, and under load it grows by itself to what queued while the last one was processed."""
    messages = client.consume(max_messages, timeout=0)
    if messages:
        return list(messages)
    first = client.poll(timeout_s)
    if first is None:
        return []
    return [first, *client.consume(max_messages - 1, timeout=0)] if max_messages > 1 else [first]


def read_ranges(settings: KafkaSettings, topic: str, ends: Mapping[int, int] | None = None,
                starts: Mapping[int, int] | None = None, *, batch: int = 5000,
                timeout_s: float = 120.0) -> Iterator[list[Any]]:
    """Messages of ``topic`` with ``start <= offset < end`` per partition, in batches (partitions may
    interleave; each partition's messages come in order).

    ``ends``: the partitions to read and where to stop (default: every partition, up to its end now).
    ``starts``: where to begin (default, or a negative value: the partition's first retained offset).
    Raises :class:`KafkaTimeout` when the range cannot be read within ``timeout_s``."""
    from confluent_kafka import TopicPartition

    reader = consumer(settings, group_id=READER_GROUP)
    try:
        if ends is None:
            metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                raise KafkaUnavailable(f"topic {topic} is not available ({getattr(metadata, 'error', None)})")
            ends = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in metadata.partitions}
        position: dict[int, int] = {}
        for partition, end in ends.items():
            low = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[0]
            start = max((starts or {}).get(partition, low), low)
            if end > start:
                position[partition] = start
        if not position:
            return
        reader.assign([TopicPartition(topic, p, o) for p, o in position.items()])
        deadline = time.monotonic() + timeout_s
        while any(position[p] < ends[p] for p in position):
            if time.monotonic() > deadline:
                raise KafkaTimeout(f"reading {topic} up to {dict(ends)} did not finish in {timeout_s}s "
                                   f"(reached {position}); is the broker up?")
            messages = reader.consume(batch, timeout=0.2)
            chunk = []
            for message in messages:
                partition = message.partition()
                if message.error() is None and partition in position and message.offset() < ends[partition]:
                    chunk.append(message)
                    position[partition] = message.offset() + 1
            if chunk:
                yield chunk
            elif not messages:
                # Offsets a consumer never sees (transaction markers, compacted records) would leave a
                # position short of its end forever: ask the client where it really is.
                for tp in reader.position([TopicPartition(topic, p) for p in position]):
                    if tp.offset >= 0:
                        position[tp.partition] = max(position[tp.partition], tp.offset)
    finally:
        reader.close()


def read_range(settings: KafkaSettings, topic: str, partition: int, start: int, end: int, *,
               batch: int = 5000, timeout_s: float = 120.0) -> Iterator[list[Any]]:
    """One partition's messages with ``start <= offset < end`` (start < 0: from the beginning)."""
    yield from read_ranges(settings, topic, {partition: end}, {partition: start} if start >= 0 else None,
                           batch=batch, timeout_s=timeout_s)


def read_all(settings: KafkaSettings, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every message of ``topic`` from its start to the current end."""
    return [m for chunk in read_ranges(settings, topic, batch=10_000, timeout_s=timeout_s) for m in chunk]


def message_count(settings: KafkaSettings, topic: str) -> int:
    """Messages in ``topic`` now, from its partitions' watermarks (exact, whatever was consumed)."""
    from confluent_kafka import TopicPartition

    reader = consumer(settings, group_id=READER_GROUP)
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        reader.close()


def count_readings(settings: KafkaSettings, topic: str, timeout_s: float = 60.0) -> int:
    """Readings in a ``sensor.readings``-shaped topic: envelopes count for every reading they hold."""
    from forewarn.readings_wire import decode_value

    return sum(len(decode_value(m.value())) for m in read_all(settings, topic, timeout_s))


def wait_for_topics(settings: KafkaSettings, names: list[str], timeout_s: float = 10.0) -> None:
    """Block until ``names`` exist in the broker's metadata."""
    client = admin(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        present = set(client.list_topics(timeout=timeout_s).topics)
        if all(name in present for name in names):
            return
        time.sleep(0.1)
    raise KafkaTimeout(f"topics {names} did not appear within {timeout_s}s; create them (forewarn stack up "
                       "creates the project's topics) or check the broker")
