"""Rebuilding the alerter's state after Redis lost it: replaying the scores and the recorded alert events
gives back exactly the trackers and alerts of the live run, wall-clock parts (escalation, feedback) too."""

from __future__ import annotations

import random

from forewarn.alerting.changes import ScoreInput
from forewarn.alerting.events import alert_event
from forewarn.alerting.policy import (
    Policy,
    PolicyBook,
    Tracker,
    allowed_feedback,
    apply_feedback,
    new_tracker,
    on_score,
    on_tick,
)
from forewarn.alerting.replay import replay
from forewarn.schemas import AlertEvent, RiskScore

T0 = 1_767_225_600_000
WALL0 = 1_780_000_000_000
POLICY = Policy(enter_p=0.8, exit_p=0.5, min_consecutive=3, resolve_after_low=3, cooldown="20s",
                escalate_after="1m", max_escalations=2)
BOOK = PolicyBook(defaults=POLICY)


def score(machine: str, i: int, p: float) -> RiskScore:
    return RiskScore(machine_id=machine, machine_type="pump", ts=T0 + i * 1000, p_failure=p, model_name="m",
                     model_version="1")


def live_run(seed: int) -> tuple[list[ScoreInput], list[AlertEvent], dict[str, Tracker], dict[str, object]]:
    """What the service does, minus Redis and Kafka: scores in order, with escalation ticks and operator
    feedback at random wall-clock moments in between; every action recorded as the alerts topic would."""
    rng = random.Random(seed)
    trackers: dict[str, Tracker] = {}
    alerts: dict[str, object] = {}
    recorded: list[AlertEvent] = []
    scores: list[ScoreInput] = []
    wall = WALL0
    machines = ["m1", "m2", "m3"]
    for i in range(300):
        for machine in machines:
            wall += rng.randint(1, 20_000)
            s = score(machine, i, rng.choice([0.1, 0.3, 0.6, 0.85, 0.9, 0.95]))
            key = f"{machine}:any"
            tracker = trackers.get(key) or new_tracker(s)
            decision = on_score(tracker, s, POLICY, wall)
            recorded += [alert_event(a, emitted_at=wall) for a in decision.actions]
            tracker = decision.tracker
            scores.append(ScoreInput(f"risk.scores:{len(scores) % 2}", len(scores), s))
            if tracker.alert is not None and rng.random() < 0.08:  # an operator answers
                options = allowed_feedback(tracker.alert)
                if options:
                    wall += 1
                    alert, changed, more = apply_feedback(tracker.alert, tracker, rng.choice(options), POLICY, wall)
                    tracker = changed or tracker
                    alerts[alert.id] = alert
                    recorded += [alert_event(a, emitted_at=wall) for a in more]
            if tracker.alert is not None and rng.random() < 0.1:  # the escalation tick
                wall += 1
                tick = on_tick(tracker, POLICY, wall)
                tracker = tick.tracker
                recorded += [alert_event(a, emitted_at=wall) for a in tick.actions]
            trackers[key] = tracker
            if tracker.alert is not None:
                alerts[tracker.alert.id] = tracker.alert
    return scores, recorded, trackers, alerts


def test_replay_rebuilds_the_live_state_exactly() -> None:
    for seed in range(5):
        scores, recorded, trackers, alerts = live_run(seed)
        assert any(e.action == "escalate" for e in recorded) and any(e.reason.startswith("operator") for e in recorded)
        duplicated = recorded + recorded[: len(recorded) // 3]  # a re-published outbox: same event ids
        changes, applied = replay(scores, duplicated, BOOK, fallback_now=0)
        assert changes.trackers == trackers, seed
        assert changes.alerts == alerts, seed
        assert applied == sum(1 for e in recorded if e.action in ("escalate", "acknowledge", "feedback")
                              or e.reason.startswith("operator"))
        last = {}
        for item in scores:
            last.setdefault(f"{item.score.machine_id}:any", {})[item.source] = item.position
        assert changes.positions == last


def test_replay_without_recorded_events_still_gives_the_score_driven_state() -> None:
    policy = POLICY.model_copy(update={"escalate_after": None})
    scores, trackers = [], {}
    for i, p in enumerate([0.9, 0.9, 0.9, 0.2, 0.2, 0.2, 0.95, 0.9, 0.9, 0.9, 0.9]):
        s = score("m1", i * 30, p)  # 30 s apart: past the cooldown
        tracker = trackers.get("m1:any") or new_tracker(s)
        trackers["m1:any"] = on_score(tracker, s, policy, WALL0).tracker
        scores.append(ScoreInput("risk.scores:0", i, s))
    changes, _ = replay(scores, [], PolicyBook(defaults=policy), fallback_now=WALL0)
    assert changes.trackers == trackers
    assert changes.trackers["m1:any"].incidents == 2


def test_a_score_scored_twice_counts_once() -> None:
    """A features or scorer restart re-publishes its batch in flight: the same reading's score again."""
    first = on_score(new_tracker(score("m1", 0, 0.9)), score("m1", 0, 0.9), POLICY, WALL0)
    again = on_score(first.tracker, score("m1", 0, 0.9), POLICY, WALL0)
    assert again.stale and again.tracker == first.tracker
