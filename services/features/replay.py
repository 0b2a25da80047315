"""Rebuild state after a restore: read one source partition between two offsets, outside faust.

faust resumes each partition at its committed offset; the snapshot may be older. The readings in between
were processed before the crash (their vectors are already out), so they only need to reach the state.
"""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from forewarn import kafka
from forewarn.services.features.processor import SourceRecord
from forewarn.settings import KafkaSettings


def read_range(settings: KafkaSettings, topic: str, partition: int, start: int, end: int,
               batch: int = 5000, timeout_s: float = 120.0) -> Iterator[list[SourceRecord]]:
    """Records with ``start <= offset < end`` (start < 0 means the beginning), in batches."""
    import time

    if end <= max(start, 0):
        return
    # Assigned, never subscribed, never committing (kafka.consumer disables auto-commit).
    consumer = kafka.consumer(settings, group_id="forewarn-features-replay")
    consumer.assign([TopicPartition(topic, partition, start if start >= 0 else OFFSET_BEGINNING)])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            messages = consumer.consume(batch, timeout=1.0)
            records = [SourceRecord(m.partition(), m.offset(), m.value()) for m in messages
                       if m.error() is None and m.offset() < end]
            if records:
                yield records
            if any(m.error() is None and m.offset() >= end - 1 for m in messages):
                return
        raise TimeoutError(f"replaying {topic}[{partition}] {start}..{end} did not finish in {timeout_s}s")
    finally:
        consumer.close()
