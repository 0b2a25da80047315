"""In-memory adapters of the alerter's ports: for unit tests, for the store contract suite (which runs the
same tests against this store and the Redis one) and for wiring an alerter without a stack.

:class:`InMemoryAlertStore` keeps what :class:`~.redis_store.RedisAlertStore` keeps, with the same
semantics (atomic decisions, loaded markers, the restless set, outboxes, the delivery ledger), but nothing
expires: retention and done-marker TTLs are Redis's job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from forewarn.alerting.changes import Changes, Stored
from forewarn.alerting.events import DeliveryJob, OutMessage
from forewarn.alerting.policy import ACTIVE, Alert, Tracker, at_rest
from forewarn.kafka import KafkaUnavailable
from forewarn.schemas import AlertState

from ..ports import AlertNotFound, StateLost


class InMemoryAlertStore:
    def __init__(self) -> None:
        # One lock for every read-decide-write: decisions are atomic as a Redis transaction is.
        self._lock = threading.RLock()
        self.wipe()

    def wipe(self) -> None:
        """Lose everything, as a Redis restarted empty does."""
        with self._lock:
            self._empty()

    def _empty(self) -> None:
        self.trackers: dict[str, Tracker] = {}
        self.positions: dict[str, dict[str, int]] = {}
        self.alerts: dict[str, Alert] = {}
        self.active: set[str] = set()
        self.restless: set[str] = set()
        self.loaded: set[str] = set()
        self.messages: dict[str, OutMessage] = {}
        self.deliveries: dict[str, DeliveryJob] = {}
        self.done: dict[str, str] = {}

    # ---- reading ---------------------------------------------------------------------------------
    def ping(self) -> bool:
        return True

    def load(self, dedup_keys: Iterable[str]) -> dict[str, Stored]:
        with self._lock:
            return {key: Stored(self.trackers.get(key), dict(self.positions.get(key, {})))
                    for key in dict.fromkeys(dedup_keys)}

    def missing_loaded(self, sources: Iterable[str]) -> list[str]:
        with self._lock:
            return [source for source in dict.fromkeys(sources) if source not in self.loaded]

    def restless_keys(self) -> set[str]:
        with self._lock:
            return set(self.restless)

    def active_keys(self) -> list[str]:
        with self._lock:
            return sorted(self.active)

    def get_alert(self, alert_id: str) -> Alert | None:
        with self._lock:
            return self.alerts.get(alert_id)

    def list_alerts(
        self, *, state: AlertState | None = None, machine_id: str | None = None, since: int | None = None,
        until: int | None = None, limit: int = 100,
    ) -> list[Alert]:
        with self._lock:
            alerts = list(self.alerts.values())
        found = [
            a for a in alerts
            if (machine_id is None or a.machine_id == machine_id) and (state is None or a.state == state)
            and (since is None or a.opened_ts >= since) and (until is None or a.opened_ts <= until)
        ]
        # Redis's sorted set orders ties by member, newest first reverses both.
        found.sort(key=lambda a: (a.opened_ts, a.id), reverse=True)
        return found[:limit]

    def pending_messages(self) -> list[OutMessage]:
        with self._lock:
            return sorted(self.messages.values(), key=lambda m: (m.created_at, m.id))

    def pending_deliveries(self) -> list[DeliveryJob]:
        with self._lock:
            jobs = list(self.deliveries.values())
        return sorted(jobs, key=lambda j: (j.created_at, j.event.alert_id, j.event.revision, j.notifier))

    # ---- writing ---------------------------------------------------------------------------------
    def _write(self, changes: Changes) -> None:
        for dedup_key, tracker in changes.trackers.items():
            self.trackers[dedup_key] = tracker
            self.positions.setdefault(dedup_key, {}).update(changes.positions.get(dedup_key, {}))
            (self.active.add if tracker.status in ACTIVE else self.active.discard)(dedup_key)
            (self.restless.discard if at_rest(tracker) else self.restless.add)(dedup_key)
        self.alerts.update(changes.alerts)
        self.messages.update((m.id, m) for m in changes.messages)
        self.deliveries.update((j.id, j) for j in changes.deliveries)

    def update_keys(
        self, dedup_keys: Iterable[str], decide: Callable[[dict[str, Stored]], Changes],
        require_loaded: Iterable[str] = (),
    ) -> Changes:
        with self._lock:
            missing = self.missing_loaded(require_loaded)
            if missing:
                raise StateLost(missing)
            changes = decide(self.load(dedup_keys))
            self._write(changes)
            return changes

    def update_alert(self, alert_id: str, decide: Callable[[Alert, Stored], Changes]) -> Changes:
        with self._lock:
            alert = self.alerts.get(alert_id)
            if alert is None:
                raise AlertNotFound(alert_id)
            changes = decide(alert, self.load([alert.dedup_key])[alert.dedup_key])
            self._write(changes)
            return changes

    def write_rebuilt(self, changes: Changes, sources: Iterable[str], chunk: int = 500) -> None:
        with self._lock:
            self._write(Changes(trackers=changes.trackers, positions=changes.positions, alerts=changes.alerts))
            self.loaded.update(sources)

    def clear_messages(self, ids: Iterable[str]) -> None:
        with self._lock:
            for message_id in ids:
                self.messages.pop(message_id, None)

    # ---- delivery ledger -------------------------------------------------------------------------
    def delivery_done(self, delivery_id: str) -> bool:
        with self._lock:
            return delivery_id in self.done

    def finish_delivery(self, delivery_id: str, result: str) -> None:
        with self._lock:
            self.done[delivery_id] = result
            self.deliveries.pop(delivery_id, None)


class InMemoryPublisher:
    """Records what was published; ``fail`` makes the next publishes raise as an unreachable Kafka does."""

    def __init__(self) -> None:
        self.published: list[OutMessage] = []
        self.fail = False

    def publish(self, messages: Sequence[OutMessage]) -> None:
        if self.fail and messages:
            raise KafkaUnavailable("in-memory publisher told to fail")
        self.published.extend(messages)

    def close(self) -> None:
        pass

    def on(self, topic: str) -> list[OutMessage]:
        return [m for m in self.published if m.topic == topic]


class InMemoryDeliveryQueue:
    """Takes every delivery and keeps it; nothing is ever sent."""

    def __init__(self) -> None:
        self.submitted: list[DeliveryJob] = []
        self._in_flight: set[str] = set()

    @property
    def in_flight(self) -> frozenset[str]:
        return frozenset(self._in_flight)

    def submit(self, jobs: Iterable[DeliveryJob]) -> int:
        accepted = [job for job in jobs if job.id not in self._in_flight]
        self._in_flight.update(job.id for job in accepted)
        self.submitted.extend(accepted)
        return len(accepted)
