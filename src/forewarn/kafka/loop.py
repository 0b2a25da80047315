"""The one consume -> handle -> deliver -> commit loop of the project's stream stages.

A stage gives the loop a ``decode`` for one message's value and a ``handle`` for a batch of decoded
messages. The loop takes what is queued (:func:`consume_ready`), sorts out consumer errors and undecodable
messages through the one error policy (``on_error``), hands the rest to ``handle``, waits for the
:class:`~forewarn.kafka.delivery.Delivery` that ``handle`` returns (if any), and commits the offsets after
the last message of each partition in the batch. Processing is synchronous: at a stop or a rebalance there
is never a half-handled batch.

When a batch fails (``handle`` or its delivery raised) the loop either rewinds, so the batch is consumed
again (``on_failure="rewind"``, for stages whose handling is idempotent), or raises, so the process dies
and its restart resumes from the last commit (``on_failure="raise"``). A failed commit is not a failure
of the batch: its output is out, and a re-consumed batch is recognised downstream, so it is logged and the
next commit covers it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from forewarn.kafka.delivery import Delivery
from forewarn.kafka.errors import ConsumeFailed, ErrorCallback, KafkaClientError, log_and_skip, where
from forewarn.kafka.reading import consume_ready

log = logging.getLogger("forewarn.kafka")

T = TypeVar("T")

PARTITION_EOF = -191  # confluent_kafka.KafkaError._PARTITION_EOF, without importing the client here


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    """A consumed message and its decoded value."""

    topic: str
    partition: int
    offset: int
    value: T


class BatchLoop(Generic[T]):
    def __init__(
        self,
        consumer: Any,
        decode: Callable[[bytes], T],
        handle: Callable[[list[Decoded[T]]], Delivery | None],
        *,
        batch_size: int = 500,
        poll_timeout_s: float = 0.5,
        on_error: ErrorCallback = log_and_skip,
        on_failure: Literal["rewind", "raise"] = "rewind",
        error_backoff_s: float = 1.0,
        delivery_timeout_s: float = 30.0,
        batch_seconds: Any = None,
    ) -> None:
        self.consumer = consumer
        self.decode = decode
        self.handle = handle
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.on_error = on_error
        self.on_failure = on_failure
        self.error_backoff_s = error_backoff_s
        self.delivery_timeout_s = delivery_timeout_s
        self.batch_seconds = batch_seconds  # a prometheus Histogram of handle + deliver + commit, or None
        self.healthy = True
        self.last_error = ""
        self.batches = 0

    def run(self, stop: threading.Event, between_batches: Callable[[], None] | None = None) -> None:
        """Until ``stop`` is set; ``between_batches`` runs after every consume (ticks, sweeps)."""
        while not stop.is_set():
            self.run_once()
            if between_batches is not None:
                between_batches()

    def run_once(self) -> bool:
        """Consume what is ready and process it; True when a batch was handled and committed."""
        messages = consume_ready(self.consumer, self.batch_size, self.poll_timeout_s)
        return bool(messages) and self.process(messages)

    def process(self, messages: list[Any]) -> bool:
        """One consumed batch: decode, handle, deliver, commit; on failure rewind (or raise)."""
        items: list[Decoded[T]] = []
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == PARTITION_EOF:
                    continue
                problem = KafkaClientError.from_kafka(error, "consume")
                if problem.fatal or not self.on_error(problem, message):
                    raise ConsumeFailed(str(problem), code=problem.code, fatal=problem.fatal)
                continue
            topic, partition, offset = str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
            first.setdefault((topic, partition), offset)
            last[(topic, partition)] = offset
            try:
                value = self.decode(message.value() or b"")
            except Exception as exc:  # noqa: BLE001 - a poison message goes to the error policy, never loops
                if self.on_error(exc, message):
                    continue
                return self._failed(first, KafkaClientError(f"undecodable message at {where(message)}: {exc}"))
            items.append(Decoded(topic, partition, offset, value))
        if not last:
            return False
        started = time.perf_counter()
        try:
            delivery = self.handle(items)
            if delivery is not None:
                delivery.wait(self.delivery_timeout_s)
        except Exception as exc:  # noqa: BLE001 - the policy decides: consume again, or die
            return self._failed(first, exc)
        self._commit(last)
        if self.batch_seconds is not None:
            self.batch_seconds.observe(time.perf_counter() - started)
        self.healthy = True
        self.batches += 1
        return True

    def _commit(self, last: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                                 asynchronous=False)
        except KafkaException as exc:
            # Broker restarting, group rebalancing, assignment lost after a session timeout: the output is
            # out, and whoever consumes these messages again finds them already applied.
            log.warning("offset commit failed (%s); those messages may be consumed again", exc,
                        extra={"fields": {"partitions": {f"{t}:{p}": o + 1 for (t, p), o in last.items()}}})

    def _failed(self, first: dict[tuple[str, int], int], exc: Exception) -> bool:
        self.healthy = False
        self.last_error = f"batch failed: {exc}"
        if self.on_failure == "raise":
            raise exc
        from confluent_kafka import KafkaException, TopicPartition

        log.exception("batch failed; rewinding to consume it again",
                      extra={"fields": {"partitions": {f"{t}:{p}": o for (t, p), o in first.items()}}})
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                log.warning("could not rewind %s:%s (revoked?)", topic, partition)
        time.sleep(self.error_backoff_s)
        return False
