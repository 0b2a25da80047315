"""Rebuild the alerter's Redis state after Redis lost it (restarted empty, flushed, a fresh replica).

Everything the alerter keeps in Redis is derived from two topics it already has:

* ``risk.scores`` decides the trackers: the policy is a pure function of each dedup key's scores in
  event time, so replaying a partition from its start up to the group's committed offset rebuilds the
  counts, cooldowns, incident numbers and alert ids exactly as the live run had them;
* ``alerts`` records what scores cannot tell: when each change was decided (wall time, which escalation
  counts from), escalations, and operator feedback. Each such event is applied to the replay right after
  the score it followed (its ``ts`` is the event time of the alert's latest score then).

Nothing is emitted: every decision the replay reaches was published, and its deliveries handed to the
dispatcher (which keeps them while Redis is away), before its offsets were committed. What the replay
covers is bounded by ``risk.scores`` retention; older history (incident numbers, alerts opened before it)
is what that retention keeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import orjson
from confluent_kafka import TopicPartition
from pydantic import ValidationError

from forewarn import kafka, scores_wire
from forewarn.schemas import RiskScore
from forewarn.settings import KafkaSettings

from .events import AlertEvent
from .policy import (
    Alert,
    InvalidTransition,
    PolicyBook,
    Tracker,
    apply_feedback,
    dedup_key_for,
    failure_mode_of,
    new_tracker,
    on_score,
    on_tick,
)
from .store import AlertStore, Changes

log = logging.getLogger(__name__)

OPERATOR_PREFIX = "operator: "


@dataclass(frozen=True)
class ReplayScore:
    source: str  # 'topic:partition'
    offset: int  # scores_wire.position
    score: RiskScore


@dataclass
class RebuildReport:
    sources: list[str]
    scores: int = 0
    keys: int = 0
    alerts: int = 0
    recorded_applied: int = 0
    seconds: float = 0.0


@dataclass
class _Key:
    tracker: Tracker
    pending: list[AlertEvent] = field(default_factory=list)  # operator / escalation events not applied yet


def _is_wall_clock_event(event: AlertEvent) -> bool:
    """Changes the scores alone cannot reproduce: escalations and operator feedback."""
    return event.action in ("escalate", "acknowledge", "feedback") or (
        event.action == "resolve" and event.reason.startswith(OPERATOR_PREFIX))


def replay(scores: Iterable[ReplayScore], recorded: Iterable[AlertEvent], policies: PolicyBook,
           fallback_now: int) -> tuple[Changes, int]:
    """The state an uninterrupted run would hold after ``scores`` (in consumption order) and the
    ``recorded`` alert events; returns the changes to write and how many recorded events were applied."""
    by_id: dict[str, AlertEvent] = {}
    for event in recorded:
        by_id.setdefault(event.event_id, event)  # the outbox may have published one twice
    wall: dict[str, list[AlertEvent]] = {}
    for event in sorted(by_id.values(), key=lambda e: (e.emitted_at, e.revision)):
        if _is_wall_clock_event(event):
            wall.setdefault(event.dedup_key, []).append(event)

    keys: dict[str, _Key] = {}
    alerts: dict[str, Alert] = {}
    offsets: dict[str, dict[str, int]] = {}
    applied = 0

    def apply_pending(state: _Key, before_ts: int | None) -> None:
        nonlocal applied
        while state.pending and (before_ts is None or state.pending[0].ts < before_ts):
            event = state.pending.pop(0)
            tracker = state.tracker
            policy = policies.for_type(tracker.machine_type)
            current = tracker.alert is not None and tracker.alert.id == event.alert_id
            if event.action == "escalate":
                if not current:
                    continue
                state.tracker = on_tick(tracker, policy, event.emitted_at).tracker
            else:
                alert = tracker.alert if current else alerts.get(event.alert_id)
                if alert is None:
                    continue
                kind = event.reason.removeprefix(OPERATOR_PREFIX).replace(" ", "_")
                try:
                    new_alert, new_tracker_, _ = apply_feedback(alert, tracker, kind,  # type: ignore[arg-type]
                                                                policy, event.emitted_at)
                except InvalidTransition as exc:
                    log.warning("recorded feedback does not fit the replayed state; skipped",
                                extra={"fields": {"event_id": event.event_id, "error": str(exc)}})
                    continue
                alerts[new_alert.id] = new_alert
                if new_tracker_ is not None:
                    state.tracker = new_tracker_
            if state.tracker.alert is not None:
                alerts[state.tracker.alert.id] = state.tracker.alert
            applied += 1

    for item in scores:
        score = item.score
        key = dedup_key_for(score.machine_id, failure_mode_of(score))
        state = keys.get(key)
        if state is None:
            state = keys[key] = _Key(new_tracker(score), list(wall.get(key, ())))
        apply_pending(state, score.ts)
        # Escalation is wall time: the recorded escalate events replay it, not the scores.
        policy = policies.for_type(score.machine_type).model_copy(update={"escalate_after": None})
        decision = on_score(state.tracker, score, policy, 0)
        if decision.actions:
            first = decision.actions[0].alert
            event = by_id.get(f"{first.id}.{first.revision}")
            decision = on_score(state.tracker, score, policy, event.emitted_at if event else fallback_now)
        state.tracker = decision.tracker
        if decision.tracker.alert is not None:
            alerts[decision.tracker.alert.id] = decision.tracker.alert
        offsets.setdefault(key, {})[item.source] = item.offset
    for state in keys.values():
        apply_pending(state, None)
    changes = Changes(trackers={k: s.tracker for k, s in keys.items()}, alerts=alerts, offsets=offsets)
    return changes, applied


def read_partitions(settings: KafkaSettings, topic: str, ends: Mapping[int, int] | None = None,
                    timeout_s: float = 300.0) -> Iterator[list]:
    """Batches of messages of ``topic`` from the start of each partition (what retention keeps) up to its
    end in ``ends`` (exclusive; None: every partition up to its current end), in offset order within a
    partition. One consumer, assigned, never in a group."""
    reader = kafka.consumer(settings, group_id="forewarn-alerter-rebuild")
    try:
        if ends is None:
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            ends = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        position = {}
        for partition, end in ends.items():
            low, _high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if end > low:
                position[partition] = low
        if not position:
            return
        reader.assign([TopicPartition(topic, p, o) for p, o in position.items()])
        deadline = time.monotonic() + timeout_s
        while any(position[p] < ends[p] for p in position):
            if time.monotonic() > deadline:
                raise kafka.KafkaUnavailable(f"reading {topic} up to {dict(ends)} did not finish in {timeout_s}s")
            batch = []
            for message in reader.consume(2000, timeout=0.05):
                partition = message.partition()
                if message.error() is None and partition in position and message.offset() < ends[partition]:
                    batch.append(message)
                    position[partition] = message.offset() + 1
            if batch:
                yield batch
    finally:
        reader.close()


class StateRebuilder:
    def __init__(self, settings: KafkaSettings, store: AlertStore, policies: PolicyBook, alerts_topic: str,
                 clock_ms: Callable[[], int]) -> None:
        self.settings = settings
        self.store = store
        self.policies = policies
        self.alerts_topic = alerts_topic
        self.clock_ms = clock_ms

    def recorded_events(self) -> list[AlertEvent]:
        events = []
        for batch in read_partitions(self.settings, self.alerts_topic):
            for message in batch:
                try:
                    events.append(AlertEvent.model_validate_json(message.value() or b""))
                except ValidationError:
                    continue
        return events

    def scores(self, topic: str, ends: Mapping[int, int]) -> Iterator[ReplayScore]:
        # A dedup key's scores all live in one partition (keyed by machine), so partitions may interleave.
        for batch in read_partitions(self.settings, topic, ends):
            for message in batch:
                try:
                    docs = scores_wire.decode_value(message.value() or b"")
                except orjson.JSONDecodeError:
                    continue  # the live loop skipped it too
                source = f"{topic}:{message.partition()}"
                for index, doc in enumerate(docs):
                    try:
                        score = RiskScore.model_validate(doc)
                    except ValidationError:
                        continue
                    yield ReplayScore(source, scores_wire.position(message.offset(), index), score)

    def rebuild(self, topic: str, ends: Mapping[int, int]) -> RebuildReport:
        """Rebuild the state of ``topic``'s partitions from their start up to ``ends`` (the committed
        offsets: everything before them was applied), write it, and mark those partitions loaded."""
        started = time.monotonic()
        sources = [f"{topic}:{p}" for p in sorted(ends)]
        report = RebuildReport(sources)
        recorded = self.recorded_events()
        counted: list[int] = [0]

        def counting(items: Iterator[ReplayScore]) -> Iterator[ReplayScore]:
            for item in items:
                counted[0] += 1
                yield item

        changes, applied = replay(counting(self.scores(topic, ends)), recorded, self.policies, self.clock_ms())
        self.store.write_rebuilt(changes, sources)
        report.scores, report.keys, report.alerts = counted[0], len(changes.trackers), len(changes.alerts)
        report.recorded_applied = applied
        report.seconds = time.monotonic() - started
        return report
