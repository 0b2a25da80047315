"""Kafka output of the alerter: publish outbox records and return only once the broker has confirmed every
one of them (the opposite of a fire-and-forget producer: the caller commits its input only after this).

It keeps its own per-call acknowledgement count instead of forewarn.kafka.Delivery because the producer is
shared across threads (the stream loop, the feedback API, the dispatcher's dead letters): a flush's
remaining count is the whole producer's, and any thread's flush may run this call's callbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from confluent_kafka import Producer

from forewarn.alerting.events import OutMessage
from forewarn.kafka import KafkaUnavailable
from forewarn.schemas import DeadLetter

from ..ports import EventPublisher


class AlertEventPublisher:
    def __init__(self, producer: Producer, timeout_s: float = 10.0) -> None:
        self.producer = producer
        self.timeout_s = timeout_s

    def publish(self, messages: Sequence[OutMessage]) -> None:
        """Produce and wait for the acks of exactly these records (safe to call from several threads)."""
        if not messages:
            return
        lock = threading.Lock()
        done = threading.Event()
        remaining = [len(messages)]
        errors: list[str] = []

        def on_delivery(err: object, _msg: object) -> None:
            with lock:
                if err is not None:
                    errors.append(str(err))
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

        deadline = time.monotonic() + self.timeout_s
        for message in messages:
            while True:
                try:
                    self.producer.produce(message.topic, key=message.key.encode(), value=message.value.encode(),
                                          on_delivery=on_delivery)
                    break
                except BufferError:  # local queue full: let librdkafka drain, then try again
                    if time.monotonic() > deadline:
                        raise KafkaUnavailable("producer queue stayed full") from None
                    self.producer.poll(0.1)
        # Any thread's poll/flush may run our callbacks, so wait on our own event, not on flush's result.
        while not done.is_set() and time.monotonic() < deadline:
            self.producer.flush(min(0.5, max(0.0, deadline - time.monotonic())))
            done.wait(0.01)
        if not done.is_set():
            raise KafkaUnavailable(f"{remaining[0]} of {len(messages)} records unconfirmed after {self.timeout_s}s")
        if errors:
            raise KafkaUnavailable(f"{len(errors)} records failed: {errors[0]}")

    def close(self, timeout_s: float = 10.0) -> None:
        self.producer.flush(timeout_s)


class KafkaDeadLetters:
    """Failed deliveries to ``alerts.dlq``, keyed by machine."""

    def __init__(self, publisher: EventPublisher, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic

    def dead_letter(self, letter: DeadLetter) -> None:
        self.publisher.publish([OutMessage(
            id=f"dlq.{letter.delivery_id}", topic=self.topic, key=letter.event.machine_id,
            value=letter.model_dump_json(), created_at=letter.failed_at,
        )])
