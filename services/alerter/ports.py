"""What the alerter's service layer needs from the world, as small Protocols (the adapters implement them;
``adapters.memory`` has in-memory ones for tests and the contract suite):

* :class:`AlertRepository`: policy state per dedup key, alert records, the outboxes and the delivery
  ledger, every decision written atomically (``adapters.redis_store`` over Redis);
* :class:`EventPublisher`: Kafka records out, returning once the broker confirmed every one
  (``adapters.kafka_publisher``);
* :class:`DeliveryQueue`: notifications handed over without waiting (``notifiers.dispatch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from forewarn.alerting.changes import Changes, Stored
from forewarn.alerting.events import DeliveryJob, OutMessage
from forewarn.alerting.policy import Alert
from forewarn.schemas import AlertState


class StoreConflict(RuntimeError):
    """Concurrent writers kept changing the same keys; the caller retries later."""


class AlertNotFound(KeyError):
    pass


class StateLost(RuntimeError):
    """The store no longer holds the state built from these input partitions ('topic:partition'): Redis
    was restarted empty or flushed. The caller rebuilds it (adapters/rebuild.py) before deciding anything."""

    def __init__(self, sources: list[str]) -> None:
        super().__init__(f"alerter state of {', '.join(sources)} is missing from Redis")
        self.sources = sources


class DeliveryLedger(Protocol):
    """Which deliveries are done (the dispatcher's bookkeeping, so a resend never notifies twice)."""

    def delivery_done(self, delivery_id: str) -> bool: ...

    def finish_delivery(self, delivery_id: str, result: str) -> None:
        """Mark a delivery finished (delivered or dead-lettered) and take it out of the outbox."""


class AlertRepository(DeliveryLedger, Protocol):
    def ping(self) -> bool: ...

    def load(self, dedup_keys: Iterable[str]) -> dict[str, Stored]: ...

    def missing_loaded(self, sources: Iterable[str]) -> list[str]:
        """The input partitions whose state the store does not hold (never built, or lost)."""

    def restless_keys(self) -> set[str]:
        """The dedup keys not at rest (policy.at_rest): only their non-high scores need the policy."""

    def active_keys(self) -> list[str]:
        """The dedup keys with an active (triggered or acknowledged) alert, sorted."""

    def get_alert(self, alert_id: str) -> Alert | None: ...

    def list_alerts(
        self, *, state: AlertState | None = None, machine_id: str | None = None, since: int | None = None,
        until: int | None = None, limit: int = 100,
    ) -> list[Alert]:
        """Newest first by opened time (event time)."""

    def pending_messages(self) -> list[OutMessage]:
        """The outbox's Kafka records, oldest first."""

    def pending_deliveries(self) -> list[DeliveryJob]:
        """The outbox's deliveries, oldest first (one alert's in revision order)."""

    def update_keys(
        self, dedup_keys: Iterable[str], decide: Callable[[dict[str, Stored]], Changes],
        require_loaded: Iterable[str] = (),
    ) -> Changes:
        """Read the dedup keys, let ``decide`` compute the changes, write them atomically (deciding again
        when another writer got there first). Raises :class:`StateLost` instead of deciding when the state
        of one of ``require_loaded`` is missing."""

    def update_alert(self, alert_id: str, decide: Callable[[Alert, Stored], Changes]) -> Changes:
        """The feedback path: an alert record plus its dedup key's state, atomically. Raises
        :class:`AlertNotFound`."""

    def write_rebuilt(self, changes: Changes, sources: Iterable[str], chunk: int = 500) -> None:
        """Write a rebuilt state, then mark ``sources`` loaded (last, so a crash midway rebuilds again)."""

    def clear_messages(self, ids: Iterable[str]) -> None: ...


class EventPublisher(Protocol):
    def publish(self, messages: Sequence[OutMessage]) -> None:
        """Return once the broker has confirmed every record; raise forewarn.kafka.KafkaUnavailable if not."""

    def close(self) -> None: ...


class DeliveryQueue(Protocol):
    @property
    def in_flight(self) -> frozenset[str]:
        """Ids of the deliveries being worked on here (the sweep leaves them alone)."""

    def submit(self, jobs: Iterable[DeliveryJob]) -> int:
        """Take deliveries without ever blocking; returns how many were accepted (the rest wait in the
        outbox)."""


class AuditLog(Protocol):
    """Where operators' actions on alerts are recorded (the hash-chained audit trail)."""

    def operator_action(self, alert: Alert, kind: str, actor: str, details: dict[str, object]) -> None: ...
