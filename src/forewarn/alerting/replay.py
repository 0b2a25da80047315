"""The state an uninterrupted run would hold, rebuilt from what the alerter's inputs and outputs recorded
(the alerter's rebuild after Redis lost its state; see services/alerter/adapters/rebuild.py for the
reading).

* the scores decide the trackers: the policy is a pure function of each dedup key's scores in event time,
  so replaying a partition from its start rebuilds the counts, cooldowns, incident numbers and alert ids
  exactly as the live run had them;
* the recorded alert events tell what scores cannot: when each change was decided (wall time, which
  escalation counts from), escalations, and operator feedback. Each such event is applied to the replay
  right after the score it followed (its ``ts`` is the event time of the alert's latest score then).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from forewarn.schemas import AlertEvent

from .changes import Changes, ScoreInput
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

log = logging.getLogger(__name__)

OPERATOR_PREFIX = "operator: "


@dataclass
class _Key:
    tracker: Tracker
    pending: list[AlertEvent] = field(default_factory=list)  # operator / escalation events not applied yet


def _is_wall_clock_event(event: AlertEvent) -> bool:
    """Changes the scores alone cannot reproduce: escalations and operator feedback."""
    return event.action in ("escalate", "acknowledge", "feedback") or (
        event.action == "resolve" and event.reason.startswith(OPERATOR_PREFIX))


def replay(scores: Iterable[ScoreInput], recorded: Iterable[AlertEvent], policies: PolicyBook,
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
    positions: dict[str, dict[str, int]] = {}
    applied = 0

    def apply_pending(state: _Key, before_ts: int | None) -> None:
        nonlocal applied
        while state.pending and (before_ts is None or state.pending[0].ts < before_ts):
            event = state.pending.pop(0)
            tracker = state.tracker
            policy = policies.for_type(tracker.machine_type, tracker.mode)
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
        policy = policies.for_type(score.machine_type, failure_mode_of(score))
        policy = policy.model_copy(update={"escalate_after": None})
        decision = on_score(state.tracker, score, policy, 0)
        if decision.actions:
            first = decision.actions[0].alert
            decided = by_id.get(f"{first.id}.{first.revision}")
            decision = on_score(state.tracker, score, policy, decided.emitted_at if decided else fallback_now)
        state.tracker = decision.tracker
        if decision.tracker.alert is not None:
            alerts[decision.tracker.alert.id] = decision.tracker.alert
        positions.setdefault(key, {})[item.source] = item.position
    for state in keys.values():
        apply_pending(state, None)
    changes = Changes(trackers={k: s.tracker for k, s in keys.items()}, alerts=alerts, positions=positions)
    return changes, applied
