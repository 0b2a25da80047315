"""Deliveries off the stream's thread: one bounded queue and worker pool per notifier (a bulkhead, so a
slow Slack never delays PagerDuty), retries with capped exponential backoff, dead letters to
``alerts.dlq``, and metrics on every notifier call.

Nothing here is the source of truth: every job is already in the Redis outbox before it is submitted.
So a full queue, a stop, or a crash just leaves jobs in the outbox, and the service's sweeper submits them
again; the ledger's done markers keep a resend from notifying twice.

The one thing the outbox cannot cover is Redis itself going away: a job whose ledger call fails is kept here
and retried (its bookkeeping only, when the notifier already took it), because when Redis comes back empty
the outbox that would have re-sent it is gone.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from forewarn.alerting.events import DeliveryJob
from forewarn.schemas import DeadLetter

from ..metrics import AlerterMetrics
from ..ports import DeliveryLedger
from .base import DeliveryError, Notifier

log = logging.getLogger(__name__)


class DeadLetterSink(Protocol):
    def dead_letter(self, letter: DeadLetter) -> None:
        """Durably record a failed delivery, or raise."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0

    def delay_s(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: exponential, capped, with jitter against thundering herds."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


LEDGER_RETRY_S = 0.1
LEDGER_RETRY_MAX_S = 5.0


def _chain_key(job: DeliveryJob) -> tuple[str, str]:
    return job.notifier, job.event.alert_id


class _Lane:
    def __init__(self, notifier: Notifier, queue_size: int) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.queue: queue.Queue[DeliveryJob] = queue.Queue(maxsize=queue_size)
        self.threads: list[threading.Thread] = []


class Dispatcher:
    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        ledger: DeliveryLedger,
        dead_letters: DeadLetterSink,
        metrics: AlerterMetrics,
        *,
        retry: RetryPolicy = RetryPolicy(),
        workers_per_notifier: int = 2,
        queue_size: int = 1000,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.lanes = {name: _Lane(n, queue_size) for name, n in notifiers.items()}
        self.ledger = ledger
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.retry = retry
        self.workers_per_notifier = workers_per_notifier
        self.clock_ms = clock_ms
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._busy = 0
        self._retries: list[tuple[float, int, DeliveryJob]] = []
        self._retry_wakeup = threading.Condition(self._lock)
        self._seq = itertools.count()
        # (notifier, alert id) -> deliveries waiting behind the one on its way; present while one is.
        self._chains: dict[tuple[str, str], deque[DeliveryJob]] = {}
        # Delivered, but the ledger did not record it yet: the retry records it instead of sending again.
        self._sent_unrecorded: set[str] = set()
        self._ledger_failures: dict[str, int] = {}
        self._stopping = threading.Event()
        self._drain_deadline = 0.0
        self._scheduler: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for lane in self.lanes.values():
            for i in range(self.workers_per_notifier):
                thread = threading.Thread(target=self._work, args=(lane,), name=f"notify-{lane.name}-{i}",
                                          daemon=True)
                thread.start()
                lane.threads.append(thread)
        self._scheduler = threading.Thread(target=self._schedule, name="notify-retries", daemon=True)
        self._scheduler.start()

    def stop(self, drain_s: float = 5.0) -> None:
        """Finish the calls in progress and, for up to ``drain_s``, what is queued; the rest stays in the
        outbox. Scheduled retries stay there too."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stopping.set()
        with self._lock:
            self._retry_wakeup.notify_all()
        for lane in self.lanes.values():
            for thread in lane.threads:
                thread.join(timeout=max(0.1, self._drain_deadline - time.monotonic()) + 30)
            lane.notifier.close()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)

    # ---- submitting ------------------------------------------------------------------------------
    @property
    def in_flight(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._in_flight)

    def idle(self) -> bool:
        """Nothing queued, running, waiting behind another delivery or waiting for a retry."""
        with self._lock:
            return not self._in_flight and self._busy == 0

    def submit(self, jobs: Iterable[DeliveryJob]) -> int:
        """Queue jobs without ever blocking; returns how many were accepted (the rest wait in the outbox).

        Jobs of one alert through one notifier go out strictly in submission order (trigger before
        acknowledge before resolve, retries included); different alerts go out in parallel."""
        accepted = 0
        for job in jobs:
            lane = self.lanes.get(job.notifier)
            if lane is None:
                self._dead_letter(job, f"notifier {job.notifier!r} is not configured in this deployment")
                continue
            chain = _chain_key(job)
            with self._lock:
                if job.id in self._in_flight or self._stopping.is_set():
                    continue
                self._in_flight.add(job.id)
                if chain in self._chains:  # an earlier delivery of this alert is still on its way
                    self._chains[chain].append(job)
                    accepted += 1
                    continue
                self._chains[chain] = deque()
            if self._enqueue(lane, job):
                accepted += 1
        return accepted

    def _enqueue(self, lane: _Lane, job: DeliveryJob) -> bool:
        try:
            lane.queue.put_nowait(job)
        except queue.Full:
            self.metrics.deferred.labels(lane.name).inc()
            log.warning("notifier queue full; delivery stays in the outbox",
                        extra={"fields": {"notifier": lane.name, "delivery_id": job.id}})
            self._abandon(job)
            return False
        self.metrics.queue_depth.labels(lane.name).set(lane.queue.qsize())
        return True

    def _finish(self, job: DeliveryJob) -> None:
        """The job is done (delivered or dead-lettered): the next delivery of its alert may go."""
        chain = _chain_key(job)
        with self._lock:
            self._in_flight.discard(job.id)
            followers = self._chains.get(chain)
            following = followers.popleft() if followers else None
            if following is None:
                self._chains.pop(chain, None)
        if following is not None:
            self._enqueue(self.lanes[following.notifier], following)

    def _abandon(self, job: DeliveryJob) -> None:
        """Give the job and everything queued behind it back to the outbox (the sweeper resubmits them)."""
        with self._lock:
            self._in_flight.discard(job.id)
            for follower in self._chains.pop(_chain_key(job), ()):
                self._in_flight.discard(follower.id)

    # ---- workers ---------------------------------------------------------------------------------
    def _work(self, lane: _Lane) -> None:
        while True:
            if self._stopping.is_set() and time.monotonic() > self._drain_deadline:
                return
            try:
                job = lane.queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            self.metrics.queue_depth.labels(lane.name).set(lane.queue.qsize())
            with self._lock:
                self._busy += 1
            try:
                self._deliver(lane, job)
            except Exception:  # noqa: BLE001 - a worker must outlive any one job; the outbox keeps it
                log.exception("delivery failed unexpectedly; the job stays in the outbox",
                              extra={"fields": {"notifier": lane.name, "delivery_id": job.id}})
                self._abandon(job)
            finally:
                with self._lock:
                    self._busy -= 1

    def _deliver(self, lane: _Lane, job: DeliveryJob) -> None:
        fields = {"notifier": lane.name, "delivery_id": job.id, "alert_id": job.event.alert_id,
                  "action": job.event.action}
        with self._lock:
            recorded_only = job.id in self._sent_unrecorded
        if recorded_only:
            self._record_delivered(job, fields)
            return
        try:
            done = self.ledger.delivery_done(job.id)
        except Exception as exc:  # noqa: BLE001 - the ledger (Redis) is away: keep the job, try again
            self._retry_bookkeeping(job, fields, exc)
            return
        if done:
            self.metrics.deliveries.labels(lane.name, "duplicate_skipped").inc()
            with self._lock:
                self._sent_unrecorded.add(job.id)
            self._record_delivered(job, fields)
            return
        attempt = job.attempts + 1
        error: BaseException | None = None
        retryable = False
        started = time.perf_counter()
        try:
            lane.notifier.send(job.event)
            outcome = "ok"
        except DeliveryError as exc:
            error, retryable = exc, exc.retryable
            outcome = "timeout" if exc.reason == "timeout" else (
                "retryable_error" if exc.retryable else "permanent_error")
        except Exception as exc:  # noqa: BLE001 - a plugin bug must not kill the worker
            error, outcome = exc, "permanent_error"
            log.exception("notifier raised an unexpected error", extra={"fields": fields})
        finally:
            self.metrics.notifier_latency.labels(lane.name).observe(time.perf_counter() - started)
        self.metrics.notifier_calls.labels(lane.name, outcome).inc()

        if error is None:
            self.metrics.deliveries.labels(lane.name, "delivered").inc()
            log.info("notification delivered", extra={"fields": {**fields, "attempt": attempt}})
            with self._lock:
                self._sent_unrecorded.add(job.id)
            self._record_delivered(job, fields)
            return
        if retryable and attempt < self.retry.max_attempts:
            delay = self.retry.delay_s(attempt)
            log.warning("notification failed; will retry",
                        extra={"fields": {**fields, "attempt": attempt, "retry_in_s": round(delay, 3),
                                          "error": str(error)}})
            self._schedule_retry(job.model_copy(update={"attempts": attempt}), delay)
            return
        self._dead_letter(job.model_copy(update={"attempts": attempt}), str(error))

    def _record_delivered(self, job: DeliveryJob, fields: Mapping[str, object]) -> None:
        try:
            self.ledger.finish_delivery(job.id, "delivered")
        except Exception as exc:  # noqa: BLE001 - sent already: only the record is retried, never the send
            self._retry_bookkeeping(job, fields, exc)
            return
        with self._lock:
            self._sent_unrecorded.discard(job.id)
            self._ledger_failures.pop(job.id, None)
        self._finish(job)

    def _retry_bookkeeping(self, job: DeliveryJob, fields: Mapping[str, object], error: BaseException) -> None:
        """The ledger failed (Redis down or restarting). The job stays in memory and is tried again with a
        short capped backoff for as long as the process lives: a Redis that comes back empty has lost the
        outbox copy, so this one is the only copy left."""
        with self._lock:
            failures = self._ledger_failures[job.id] = self._ledger_failures.get(job.id, 0) + 1
        self.metrics.deliveries.labels(job.notifier, "ledger_retry").inc()
        delay = min(LEDGER_RETRY_MAX_S, LEDGER_RETRY_S * 2 ** (failures - 1))
        log.warning("delivery ledger unavailable; keeping the delivery and retrying", extra={"fields": {
            **fields, "failures": failures, "retry_in_s": delay, "error": str(error)}})
        self._schedule_retry(job, delay)

    def _dead_letter(self, job: DeliveryJob, error: str) -> None:
        letter = DeadLetter(delivery_id=job.id, notifier=job.notifier, attempts=job.attempts, error=error,
                            failed_at=self.clock_ms(), event=job.event)
        try:
            self.dead_letters.dead_letter(letter)
            self.ledger.finish_delivery(job.id, "dead_lettered")
        except Exception:  # noqa: BLE001 - the outbox still holds the job; the sweeper tries again
            log.exception("could not dead-letter a delivery; it stays in the outbox",
                          extra={"fields": {"delivery_id": job.id}})
            if job.notifier in self.lanes:
                self._abandon(job)
            return
        self.metrics.deliveries.labels(job.notifier, "dead_lettered").inc()
        log.error("notification dead-lettered", extra={"fields": {
            "delivery_id": job.id, "notifier": job.notifier, "attempts": job.attempts, "error": error}})
        if job.notifier in self.lanes:
            self._finish(job)

    # ---- retries ---------------------------------------------------------------------------------
    def _schedule_retry(self, job: DeliveryJob, delay_s: float) -> None:
        with self._lock:
            stopping = self._stopping.is_set()
            if not stopping:
                heapq.heappush(self._retries, (time.monotonic() + delay_s, next(self._seq), job))
                self._retry_wakeup.notify()
        if stopping:
            self._abandon(job)  # stays in the outbox for the next start

    def _schedule(self) -> None:
        while True:
            due: list[DeliveryJob] = []
            with self._lock:
                if self._stopping.is_set():  # what waits for a retry stays in the outbox
                    self._retries.clear()
                    self._chains.clear()
                    self._in_flight.clear()
                    return
                now = time.monotonic()
                while self._retries and self._retries[0][0] <= now:
                    due.append(heapq.heappop(self._retries)[2])
                if not due:
                    timeout = self._retries[0][0] - now if self._retries else 1.0
                    self._retry_wakeup.wait(timeout=min(timeout, 1.0))
                    continue
            for job in due:
                self._enqueue(self.lanes[job.notifier], job)
