"""Readings and ground truth straight into Kafka through the idempotent producer.

Readings go as envelopes (forewarn.readings_wire): one message per partition per batch holding many
readings, so consumers pay their per-message cost once per few hundred readings. Ground-truth events are
few and go one per message, keyed by machine_id.

The Kafka message timestamp is left to the producer (wall clock), not set to the event time: a replayed
history weeks old would otherwise fall behind the topic's time-based retention and be deleted at once.
Event time travels in the JSON value (``ts``), which is what every consumer reads.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from forewarn.readings_wire import envelopes
from forewarn.schemas import GroundTruthEvent
from forewarn.sim.batch import ReadingBatch
from forewarn.sim.sinks import DeliveryFailed

FLUSH_TIMEOUT_S = 60.0


class _Deliveries:
    """Counts delivery reports; keeps the first error so the message can name it."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{error.str()} (topic {message.topic()})"


class KafkaSink:
    """Implements both :class:`~forewarn.sim.sinks.ReadingSink` and ``TruthSink`` on one producer."""

    def __init__(self, producer: Producer, readings_topic: str | None, truth_topic: str | None,
                 stamp_ingested_at: bool = False) -> None:
        self._producer = producer
        # Load generators that stand in for ingest stamp the send time, as ingest would, so latency downstream
        # is measured from the moment a reading entered the system.
        self._stamp = stamp_ingested_at
        self._readings_topic = readings_topic
        self._truth_topic = truth_topic
        self.deliveries = _Deliveries()
        self._closed = False
        self._partitions: int | None = None

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key.encode(), value=value, on_delivery=self.deliveries)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room again.
                self._producer.poll(0.05)

    def write(self, batch: ReadingBatch) -> None:
        if self._readings_topic is None:
            return
        if self._partitions is None:
            metadata = self._producer.list_topics(self._readings_topic, timeout=10).topics[self._readings_topic]
            self._partitions = max(1, len(metadata.partitions))
        records = batch.records()
        if self._stamp:
            now_ms = int(time.time() * 1000)
            records = ({**record, "ingested_at": now_ms} for record in records)
        for partition, value, _ in envelopes(records, self._partitions):
            while True:
                try:
                    self._producer.produce(self._readings_topic, value=value, partition=partition,
                                           on_delivery=self.deliveries)
                    break
                except BufferError:
                    self._producer.poll(0.05)
        self._producer.poll(0)

    def write_events(self, events: Sequence[GroundTruthEvent]) -> None:
        if self._truth_topic is None:
            return
        for event in events:
            self._produce(self._truth_topic, event.machine_id, event.model_dump_json().encode())
        self._producer.poll(0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            raise DeliveryFailed(
                f"{remaining} messages were still undelivered after {FLUSH_TIMEOUT_S:.0f}s; "
                "is Kafka up? Check with: forewarn stack status"
            )
        if self.deliveries.failed:
            raise DeliveryFailed(
                f"Kafka rejected {self.deliveries.failed} messages, first: {self.deliveries.first_error}"
            )


def require_topics(producer: Producer, names: list[str], timeout_s: float = 10.0) -> None:
    """Fail before sending anything when a topic is missing (the broker does not auto-create them), rather
    than after every message has timed out."""
    try:
        present = set(producer.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise DeliveryFailed(
            f"cannot reach Kafka: {exc}; is it up? Check with: forewarn stack status"
        ) from None
    missing = [name for name in names if name not in present]
    if missing:
        raise DeliveryFailed(
            f"Kafka topic(s) {', '.join(missing)} do not exist; 'forewarn stack up' creates the project's "
            "topics (with FOREWARN_KAFKA__TOPIC_PREFIX applied), or create them first"
        )


def kafka_sink(settings: Any, readings_topic: str | None, truth_topic: str | None) -> KafkaSink:
    """Wire a sink to the project's producer settings (acks=all, idempotent, lz4)."""
    from forewarn import kafka

    producer = kafka.producer(settings)
    require_topics(producer, [t for t in (readings_topic, truth_topic) if t])
    return KafkaSink(producer, readings_topic, truth_topic)
