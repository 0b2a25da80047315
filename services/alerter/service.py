"""The alerter's service layer: runs the pure policy over scores, time and feedback, and turns its
decisions into durable state, Kafka records and notifications, in this order:

1. one repository transaction: policy state (+ the input positions it has applied), alert records, the
   Kafka records to publish and the notifications to send (the outboxes);
2. notifications handed to the delivery queue (never waited for);
3. Kafka records published and confirmed, then removed from the outbox.

Only after that does the stream loop commit its offsets. A crash anywhere leaves either unapplied input
(re-consumed; the stored positions make it a no-op where it was applied) or outbox entries (re-published,
re-sent; event ids and done markers make that idempotent).

It is typed against the ports (ports.py) only: bootstrap.py wires Redis, Kafka and the dispatcher in, the
unit tests the in-memory adapters (adapters/memory.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from forewarn.alerting.changes import Changes, ScoreInput, Stored
from forewarn.alerting.events import DeliveryJob, FeedbackRequest, OutMessage, alert_event, feedback_event
from forewarn.alerting.policy import (
    Action,
    Alert,
    Policy,
    PolicyBook,
    apply_feedback,
    dedup_key_for,
    failure_mode_of,
    new_tracker,
    on_score,
    on_tick,
)
from forewarn.alerting.triage import ScorePeek, keep_for_policy
from forewarn.kafka import KafkaUnavailable
from forewarn.schemas import AlertEvent, AlertState, FeedbackEvent

from .metrics import AlerterMetrics
from .ports import AlertRepository, AuditLog, DeliveryQueue, EventPublisher, StateLost

log = logging.getLogger(__name__)


# The actor of feedback that names nobody (no authenticated user, no ``operator`` field).
ANONYMOUS_OPERATOR = "unnamed operator (alerter API)"


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Topics:
    scores: str
    alerts: str
    dead_letters: str
    feedback: str
    model_health: str | None = None  # the monitor's judgements; None: machine alerts only


@dataclass(frozen=True)
class FeedbackResult:
    alert: Alert
    event: FeedbackEvent
    published: bool


@dataclass(frozen=True)
class OutboxTiming:
    """When the sweep takes over what the path that wrote an outbox entry evidently gave up on."""

    delivery_stale_ms: int = 60_000
    message_stale_ms: int = 10_000


class AlertService:
    def __init__(
        self,
        store: AlertRepository,
        publisher: EventPublisher,
        deliveries: DeliveryQueue,
        policies: PolicyBook,
        topics: Topics,
        notifiers: Sequence[str],
        metrics: AlerterMetrics,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        outbox: OutboxTiming = OutboxTiming(),
        audit: AuditLog | None = None,
    ) -> None:
        self.store, self.publisher, self.deliveries = store, publisher, deliveries
        self.policies, self.topics, self.metrics = policies, topics, metrics
        self.notifiers = tuple(notifiers)  # the configured ones, in registry order
        self.clock_ms = clock_ms
        self.outbox = outbox
        self._publish_failed = False
        self.audit = audit

    # ---- turning actions into outputs ------------------------------------------------------------
    def _record(self, changes: Changes, actions: Sequence[Action], policy: Policy, now: int) -> None:
        for action in actions:
            event = alert_event(action, emitted_at=now)
            changes.messages.append(OutMessage(
                id=event.event_id, topic=self.topics.alerts, key=event.machine_id,
                value=event.model_dump_json(), created_at=now,
            ))
            changes.deliveries.extend(
                DeliveryJob.for_event(event, name, now) for name in policy.routes.targets(action.kind, self.notifiers)
            )

    def _after_commit(self, changes: Changes) -> None:
        """Hand over notifications, then publish and confirm the Kafka records. Raises KafkaUnavailable."""
        self.deliveries.submit(changes.deliveries)
        for message in changes.messages:
            if message.topic == self.topics.alerts:
                event = AlertEvent.model_validate_json(message.value)
                self.metrics.transitions.labels(event.action, event.machine_type).inc()
                if event.action == "trigger":
                    self.metrics.reading_to_alert.observe(max(0.0, (self.clock_ms() - event.ts) / 1000.0))
                log.info("alert %s", event.action, extra={"fields": {
                    "alert_id": event.alert_id, "dedup_key": event.dedup_key, "state": event.state,
                    "reason": event.reason}})
        if self._publish_failed:  # an earlier batch left records in the outbox: they go first
            self.flush_messages(min_age_ms=0)
        self._publish(changes.messages)

    def _publish(self, messages: Sequence[OutMessage]) -> None:
        try:
            self.publisher.publish(messages)
        except KafkaUnavailable:
            self._publish_failed = True
            raise
        self.store.clear_messages(m.id for m in messages)

    def flush_messages(self, min_age_ms: int) -> int:
        now = self.clock_ms()
        pending = [m for m in self.store.pending_messages() if now - m.created_at >= min_age_ms]
        self._publish(pending)
        if min_age_ms == 0:
            self._publish_failed = False
        return len(pending)

    # ---- use cases -------------------------------------------------------------------------------
    def needs_policy(self, scores: Sequence[ScorePeek], sources: Sequence[str], *,
                     require_loaded: bool = False) -> list[bool]:
        """Which scores can change anything: the rest are skipped before validation and Redis.

        See forewarn.alerting.triage for why skipping them changes no decision.

        With ``require_loaded``, raises ports.StateLost when Redis lost the state of one of ``sources``:
        an empty Redis would make every key look at rest."""
        if require_loaded:
            missing = self.store.missing_loaded(sources)
            if missing:
                raise StateLost(missing)
        keep = keep_for_policy(scores, self.store.restless_keys(), self.policies)
        skipped = len(keep) - sum(keep)
        if skipped:
            self.metrics.scores.labels("at_rest").inc(skipped)
        return keep

    def handle_scores(self, items: Sequence[ScoreInput], *, require_loaded: bool = False) -> None:
        """Apply a batch of scores; returns once its outputs are durable. With ``require_loaded``, raises
        ports.StateLost when Redis lost the state of one of the batch's partitions (nothing is decided)."""
        if not items:
            return
        keys = [dedup_key_for(i.score.machine_id, failure_mode_of(i.score)) for i in items]
        now = self.clock_ms()
        counts: dict[str, int] = {}

        def decide(stored: dict[str, Stored]) -> Changes:
            counts.clear()
            changes = Changes()
            trackers = {k: s.tracker for k, s in stored.items()}
            applied = {k: dict(s.positions) for k, s in stored.items()}
            for item, key in zip(items, keys, strict=True):
                last = applied[key].get(item.source)
                if last is not None and item.position <= last:
                    counts["duplicate"] = counts.get("duplicate", 0) + 1
                    continue
                before = trackers[key] or new_tracker(item.score)
                policy = self.policies.for_type(item.score.machine_type, failure_mode_of(item.score))
                decision = on_score(before, item.score, policy, now)
                counts["stale" if decision.stale else "applied"] = counts.get(
                    "stale" if decision.stale else "applied", 0) + 1
                trackers[key] = decision.tracker
                applied[key][item.source] = item.position
                changes.trackers[key] = decision.tracker
                changes.positions.setdefault(key, {})[item.source] = item.position
                if decision.tracker.alert is not None and decision.tracker.alert != before.alert:
                    changes.add_alert(decision.tracker.alert)
                self._record(changes, decision.actions, policy, now)
            return changes

        sources = [i.source for i in items] if require_loaded else []
        changes = self.store.update_keys(keys, decide, require_loaded=sources)
        for outcome, count in counts.items():
            self.metrics.scores.labels(outcome).inc(count)
        self._after_commit(changes)

    def tick(self) -> None:
        """Escalate alerts nobody acknowledged in time."""
        keys = self.store.active_keys()
        if not keys:
            return
        now = self.clock_ms()

        def decide(stored: dict[str, Stored]) -> Changes:
            changes = Changes()
            for key, (tracker, _) in stored.items():
                if tracker is None:
                    continue
                policy = self.policies.for_type(tracker.machine_type, tracker.mode)
                decision = on_tick(tracker, policy, now)
                if decision.actions and decision.tracker.alert is not None:
                    changes.trackers[key] = decision.tracker
                    changes.add_alert(decision.tracker.alert)
                    self._record(changes, decision.actions, policy, now)
            return changes

        changes = self.store.update_keys(keys, decide)
        if changes.trackers:
            self._after_commit(changes)

    def sweep(self, *, startup: bool = False) -> None:
        """Re-publish records and re-submit deliveries that a crash, an outage or a full queue left in
        the outboxes. At startup everything pending is taken; later only what is old enough that the path
        that wrote it has evidently given up."""
        self.flush_messages(min_age_ms=0 if startup else self.outbox.message_stale_ms)
        now = self.clock_ms()
        in_flight = self.deliveries.in_flight
        stale = [
            job for job in self.store.pending_deliveries()
            if job.id not in in_flight and (startup or now - job.created_at >= self.outbox.delivery_stale_ms)
        ]
        if stale:
            log.info("re-submitting deliveries from the outbox", extra={"fields": {"count": len(stale)}})
            self.deliveries.submit(stale)

    def feedback(self, alert_id: str, request: FeedbackRequest, *, actor: str | None = None) -> FeedbackResult:
        """Raises ports.AlertNotFound and policy.InvalidTransition. ``actor``: who sent it, as the API
        authenticated them; else the request's ``operator``; recorded on the audit trail."""
        now = self.clock_ms()

        def decide(alert: Alert, stored: Stored) -> Changes:
            policy = self.policies.for_type(alert.machine_type, alert.mode)
            new_alert, tracker, actions = apply_feedback(alert, stored.tracker, request.kind, policy, now)
            changes = Changes()
            changes.add_alert(new_alert)
            if tracker is not None and tracker is not stored.tracker:
                changes.trackers[alert.dedup_key] = tracker
            self._record(changes, actions, policy, now)
            label = feedback_event(new_alert, request, now)
            changes.messages.append(OutMessage(
                id=label.event_id, topic=self.topics.feedback, key=label.machine_id,
                value=label.model_dump_json(), created_at=now,
            ))
            changes.result = FeedbackResult(alert=new_alert, event=label, published=False)
            return changes

        changes = self.store.update_alert(alert_id, decide)
        self.metrics.feedback.labels(request.kind).inc()
        result: FeedbackResult = changes.result
        if self.audit is not None:
            self.audit.operator_action(result.alert, request.kind, actor or request.operator or ANONYMOUS_OPERATOR, {
                "operator": request.operator, "comment": request.comment, "failure_mode": request.failure_mode,
                "failure_ts": request.failure_ts, "label_event_id": result.event.event_id})
        try:
            self._after_commit(changes)
        except KafkaUnavailable:
            log.warning("feedback stored; publishing waits for Kafka", extra={"fields": {"alert_id": alert_id}})
            return result
        return FeedbackResult(alert=result.alert, event=result.event, published=True)

    def get_alert(self, alert_id: str) -> Alert | None:
        return self.store.get_alert(alert_id)

    def list_alerts(
        self, *, state: AlertState | None = None, machine_id: str | None = None, since: int | None = None,
        until: int | None = None, limit: int = 100,
    ) -> list[Alert]:
        return self.store.list_alerts(state=state, machine_id=machine_id, since=since, until=until, limit=limit)
