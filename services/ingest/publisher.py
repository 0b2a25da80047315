"""Where validated readings and dead letters go: a small interface, and its Kafka implementation.

The app depends on :class:`Publisher` only; tests pass a fake. :class:`KafkaPublisher` packs a request's
readings into envelopes, one per partition of ``sensor.readings`` (see forewarn.readings_wire: consumers
pay their per-message cost once per envelope), and produces them in one ``produce_batch`` call on the
event loop, while a poller thread serves delivery reports; the request awaits a future that the last
report resolves. A reading counts as accepted only when the delivery report of its envelope says so
(idempotent producer, acks=all).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from forewarn import kafka, topics
from forewarn.readings_wire import pack
from forewarn.settings import KafkaSettings

log = logging.getLogger("forewarn.ingest.publisher")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request's messages. ``readings``: (batch index, key, value); ``dead_letters``: (index, value)."""

    readings: list[tuple[int, bytes, bytes]]
    dead_letters: list[tuple[int, bytes]]
    dead_letter_key: bytes | None = None


@dataclass(slots=True)
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    """Batch indexes of readings Kafka confirmed."""
    undelivered: list[int] = field(default_factory=list)
    """Batch indexes of readings without a confirmation (failed, or no report in time)."""
    dead_letters_undelivered: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def complete(self) -> bool:
        return not self.undelivered and not self.dead_letters_undelivered


class Publisher(Protocol):
    def start(self) -> None: ...

    async def publish(self, outgoing: Outgoing) -> DeliveryReport: ...

    def readiness(self) -> tuple[bool, str]: ...

    def close(self) -> None: ...


class _Delivery:
    """Collects one request's delivery reports (in the poller thread) and wakes the request when done."""

    __slots__ = ("_done", "_expected", "_future", "_lock", "_loop", "dead_letters", "error", "readings")

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()
        self._expected = expected
        self._done = 0
        self._lock = threading.Lock()
        self.readings: dict[int, bool] = {}
        self.dead_letters: dict[int, bool] = {}
        self.error: str | None = None

    def on_reading(self, index: int, err: KafkaError | None, _msg: Any) -> None:
        self._record(self.readings, index, err)

    def on_dead_letter(self, index: int, err: KafkaError | None, _msg: Any) -> None:
        self._record(self.dead_letters, index, err)

    def _record(self, outcomes: dict[int, bool], index: int, err: KafkaError | None) -> None:
        with self._lock:
            if index in outcomes:  # a message refused at enqueue time has its outcome already
                return
            outcomes[index] = err is None
            if err is not None and self.error is None:
                self.error = err.str()
            self._done += 1
            finished = self._done >= self._expected
        if finished:
            self._loop.call_soon_threadsafe(_resolve, self._future)

    async def wait(self, timeout_s: float) -> None:
        if self._expected == 0:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._future), timeout_s)
        except TimeoutError:
            pass

    def report(self, outgoing: Outgoing) -> DeliveryReport:
        with self._lock:
            readings, dead_letters = dict(self.readings), dict(self.dead_letters)
        result = DeliveryReport(error=self.error)
        for index, _key, _value in outgoing.readings:
            (result.delivered if readings.get(index) else result.undelivered).append(index)
        result.dead_letters_undelivered = [i for i, _v in outgoing.dead_letters if not dead_letters.get(i)]
        if not result.complete and result.error is None:
            result.error = "no delivery report in time"
        return result


def _each(on_outcome: Callable[[int, KafkaError | None, Any], None], indexes: list[int],
          err: KafkaError | None, msg: Any) -> None:
    """One envelope's delivery report is the outcome of every reading in it."""
    for index in indexes:
        on_outcome(index, err, msg)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class KafkaPublisher:
    def __init__(
        self,
        settings: KafkaSettings,
        delivery_timeout_s: float,
        producer_factory: Callable[..., Producer] = kafka.producer,
    ) -> None:
        self.settings = settings
        self.delivery_timeout_s = delivery_timeout_s
        self.readings_topic = settings.topic(topics.SENSOR_READINGS)
        self.dlq_topic = settings.topic(topics.SENSOR_READINGS_DLQ)
        self._producer_factory = producer_factory
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._fatal: str | None = None
        self._partition_count: int | None = None

    def start(self) -> None:
        if self._producer is not None:
            return
        self._producer = self._producer_factory(
            self.settings,
            # Every message gets a definite outcome (delivered or failed) before the request gives up on it.
            **{"message.timeout.ms": int(self.delivery_timeout_s * 1000), "error_cb": self._on_error},
        )
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_forever, name="ingest-delivery-reports", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        assert self._producer is not None
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            log.error("fatal Kafka producer error; restart the service", extra={"fields": {"error": err.str()}})
        else:
            log.warning("Kafka producer error", extra={"fields": {"error": err.str(), "code": err.name()}})

    async def publish(self, outgoing: Outgoing) -> DeliveryReport:
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaPublisher.start() was not called")
        delivery = _Delivery(asyncio.get_running_loop(), len(outgoing.readings) + len(outgoing.dead_letters))
        try:
            partitions = self._partitions(producer)
        except KafkaException as exc:  # broker unreachable before the first envelope: nothing was sent
            return DeliveryReport(undelivered=[i for i, _k, _v in outgoing.readings],
                                  dead_letters_undelivered=[i for i, _v in outgoing.dead_letters],
                                  error=f"Kafka unreachable: {exc}")
        packed = pack([(key.decode(), value) for _index, key, value in outgoing.readings], partitions)
        dead_letter_messages = [
            {"key": outgoing.dead_letter_key, "value": value,
             "callback": functools.partial(delivery.on_dead_letter, index)}
            for index, value in outgoing.dead_letters
        ]
        # produce_batch ignores a per-message partition (confluent-kafka 2.16), so one call per envelope.
        for partition, value, positions in packed:
            indexes = [outgoing.readings[p][0] for p in positions]
            self._produce(producer, self.readings_topic,
                          [{"value": value, "callback": functools.partial(_each, delivery.on_reading, indexes)}],
                          functools.partial(_each, delivery.on_reading), [indexes], partition=partition)
        self._produce(producer, self.dlq_topic, dead_letter_messages, delivery.on_dead_letter,
                      [index for index, _v in outgoing.dead_letters])

        # A little beyond message.timeout.ms: librdkafka reports a timed-out message shortly after it.
        await delivery.wait(self.delivery_timeout_s + 2.0)
        return delivery.report(outgoing)

    def _partitions(self, producer: Producer) -> int:
        if self._partition_count is None:
            metadata = producer.list_topics(self.readings_topic, timeout=5.0).topics.get(self.readings_topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            self._partition_count = len(metadata.partitions)
        return self._partition_count

    @staticmethod
    def _produce(
        producer: Producer,
        topic: str,
        messages: list[dict[str, Any]],
        on_outcome: Callable[[Any, KafkaError | None, Any], None],
        indexes: list[Any],
        partition: int = -1,
    ) -> None:
        if not messages:
            return
        try:
            queued = producer.produce_batch(topic, messages, partition=partition)
        except (BufferError, KafkaException) as exc:
            # Nothing of this batch is known to be queued: report the batch failed. A message that was
            # queued after all reports again and is ignored (first outcome wins), so "accepted" never
            # overstates; at worst a reading is resent and stored twice (at least once).
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(
                KafkaError._QUEUE_FULL
            )
            for index in indexes:
                on_outcome(index, error, None)
            return
        if queued < len(messages):
            for index, message in zip(indexes, messages, strict=True):
                if "_error" in message:
                    on_outcome(index, message["_error"], None)

    def readiness(self) -> tuple[bool, str]:
        if self._fatal is not None:
            return False, f"Kafka producer failed fatally: {self._fatal}"
        if self._producer is None:
            return False, "producer not started"
        try:
            metadata = self._producer.list_topics(timeout=2.0)
        except KafkaException as exc:
            return False, f"Kafka unreachable at {self.settings.bootstrap_servers}: {exc}"
        missing = [name for name in (self.readings_topic, self.dlq_topic) if name not in metadata.topics]
        if missing:
            return False, f"topics missing: {', '.join(missing)} (run 'forewarn stack up' or create them)"
        return True, "kafka reachable"

    def close(self) -> None:
        """Flush what is queued (bounded by the delivery timeout) and stop the poller."""
        if self._producer is None:
            return
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        left = self._producer.flush(self.delivery_timeout_s)
        if left:
            log.error("messages left unconfirmed at shutdown", extra={"fields": {"messages": left}})
        self._producer = None


class InMemoryPublisher:
    """A :class:`Publisher` that keeps messages in lists: for unit tests and local experiments.

    ``fail_readings`` makes the readings at those batch indexes go unconfirmed, as when Kafka is down.
    """

    def __init__(self, fail_readings: set[int] | None = None, ready: bool = True) -> None:
        self.readings: list[tuple[bytes, bytes]] = []
        self.dead_letters: list[tuple[bytes | None, bytes]] = []
        self.fail_readings = fail_readings or set()
        self.ready = ready
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    async def publish(self, outgoing: Outgoing) -> DeliveryReport:
        report = DeliveryReport()
        for index, key, value in outgoing.readings:
            if index in self.fail_readings:
                report.undelivered.append(index)
            else:
                self.readings.append((key, value))
                report.delivered.append(index)
        self.dead_letters.extend((outgoing.dead_letter_key, value) for _index, value in outgoing.dead_letters)
        if report.undelivered:
            report.error = "Local: Message timed out"
        return report

    def readiness(self) -> tuple[bool, str]:
        return self.ready, "in memory" if self.ready else "in-memory publisher set not ready"

    def close(self) -> None:
        self.closed = True
