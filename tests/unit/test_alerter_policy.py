"""The alert policy as tables: scores in, states and actions out. Pure functions, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.alerting.policy import (
    InvalidTransition,
    Policy,
    Tracker,
    allowed_feedback,
    apply_feedback,
    classify,
    new_tracker,
    on_score,
    on_tick,
    severity_for,
)
from forewarn.schemas import Contribution, RiskScore

MIN = 60_000
NOW = 1_700_000_000_000


def score(p: float, ts: int, rul: float | None = None, machine: str = "m1", **extra: object) -> RiskScore:
    return RiskScore(machine_id=machine, machine_type="pump", ts=ts, p_failure=p, rul=rul, model_name="m",
                     model_version="1", horizon="24h", site="plant-a", **extra)


def run(policy: Policy, values: list[float | tuple[float, float | None]], step_ms: int = 1000,
        tracker: Tracker | None = None, now: int = NOW) -> tuple[Tracker, list[str], list[str]]:
    """Feed p_failure values (or (p, rul) pairs) one per step; return the final tracker, the status after
    each score, and the actions in order."""
    statuses, actions = [], []
    for i, value in enumerate(values):
        p, rul = value if isinstance(value, tuple) else (value, None)
        s = score(p, ts=NOW + i * step_ms, rul=rul)
        tracker = tracker or new_tracker(s)
        decision = on_score(tracker, s, policy, now)
        tracker = decision.tracker
        statuses.append(tracker.status)
        actions += [a.kind for a in decision.actions]
    assert tracker is not None
    return tracker, statuses, actions


BASE = dict(enter_p=0.8, exit_p=0.5, min_consecutive=1, resolve_after_low=1, cooldown="0s", escalate_after=None)


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.95, "high"), (0.8, "high"), (0.79, "band"), (0.5, "band"), (0.49, "low"), (0.0, "low")],
)
def test_classify_hysteresis_band(p: float, expected: str) -> None:
    assert classify(Policy(**BASE), score(p, NOW)) == expected


@pytest.mark.parametrize(
    ("values", "statuses", "actions"),
    [
        # enters only at enter_p, leaves only below exit_p: the band in between holds the state
        ([0.79, 0.81, 0.7, 0.6, 0.5, 0.49], ["idle", "triggered", "triggered", "triggered", "triggered", "resolved"],
         ["trigger", "resolve"]),
        # a band score while idle does not trigger
        ([0.7, 0.75, 0.79], ["idle", "idle", "idle"], []),
    ],
    ids=["hysteresis", "band-never-triggers"],
)
def test_hysteresis(values: list[float], statuses: list[str], actions: list[str]) -> None:
    _, got_statuses, got_actions = run(Policy(**BASE), values)
    assert got_statuses == statuses
    assert got_actions == actions


@pytest.mark.parametrize(
    ("values", "statuses"),
    [
        ([0.9, 0.9, 0.9], ["pending", "pending", "triggered"]),
        ([0.9, 0.9, 0.3, 0.9, 0.9, 0.9], ["pending", "pending", "idle", "pending", "pending", "triggered"]),
        # a band score breaks the run of highs too
        ([0.9, 0.9, 0.7, 0.9, 0.9], ["pending", "pending", "idle", "pending", "pending"]),
    ],
    ids=["three-in-a-row", "low-resets", "band-resets"],
)
def test_minimum_consecutive_high_scores(values: list[float], statuses: list[str]) -> None:
    _, got, actions = run(Policy(**{**BASE, "min_consecutive": 3}), values)
    assert got == statuses
    assert actions == (["trigger"] if statuses[-1] == "triggered" else [])


def test_resolve_needs_consecutive_lows() -> None:
    policy = Policy(**{**BASE, "resolve_after_low": 3})
    _, statuses, actions = run(policy, [0.9, 0.2, 0.2, 0.6, 0.2, 0.2, 0.2])
    assert statuses == ["triggered"] * 6 + ["resolved"]
    assert actions == ["trigger", "resolve"]


def test_resolve_after_time_low() -> None:
    policy = Policy(**{**BASE, "resolve_after_low": None, "resolve_after": "5m"})
    _, statuses, actions = run(policy, [0.9] + [0.1] * 7, step_ms=MIN)
    # lows at 1..7 min; the first low is at 1 min, so 5 min of lows is reached at 6 min
    assert statuses == ["triggered"] * 6 + ["resolved", "idle"]
    assert actions == ["trigger", "resolve"]


def test_cooldown_ignores_highs_then_allows_a_new_incident() -> None:
    policy = Policy(**{**BASE, "cooldown": "10s"})
    tracker, statuses, actions = run(policy, [0.9, 0.1] + [0.95] * 9 + [0.95, 0.95])
    # resolved at 1 s; highs at 2..10 s fall inside the cooldown; at 11 s a new incident starts
    assert statuses[:11] == ["triggered", "resolved"] + ["resolved"] * 9
    assert statuses[11] == "triggered"
    assert actions == ["trigger", "resolve", "trigger"]
    assert tracker.incidents == 2


FLAPPING = [
    # noisy climb across the entry threshold, a long noisy plateau, noisy decline across the exit threshold
    0.3, 0.82, 0.4, 0.85, 0.6, 0.81, 0.83, 0.9, 0.79, 0.88, 0.52, 0.91, 0.7, 0.49, 0.93, 0.45, 0.48,
    0.6, 0.44, 0.42, 0.3, 0.55, 0.2, 0.1, 0.1, 0.1, 0.85, 0.1, 0.86, 0.87, 0.1,
]


def test_flapping_scores_make_one_trigger_and_one_resolve_per_incident() -> None:
    policy = Policy(enter_p=0.8, exit_p=0.5, min_consecutive=3, resolve_after_low=3, cooldown="30s",
                    escalate_after=None)
    tracker, _, actions = run(policy, FLAPPING)
    assert actions == ["trigger", "resolve"]
    assert tracker.incidents == 1
    # the same machine flapping without hysteresis/cooldown would page several times
    naive = Policy(enter_p=0.8, exit_p=0.8, min_consecutive=1, resolve_after_low=1, cooldown="0s",
                   escalate_after=None)
    assert run(naive, FLAPPING)[2].count("trigger") > 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=120), st.integers(1, 4), st.integers(1, 4))
def test_any_sequence_alternates_trigger_and_resolve(values: list[float], consecutive: int, lows: int) -> None:
    policy = Policy(enter_p=0.8, exit_p=0.5, min_consecutive=consecutive, resolve_after_low=lows,
                    cooldown="3s", escalate_after=None)
    tracker, _, actions = run(policy, values)
    assert all(a != b for a, b in zip(actions, actions[1:], strict=False))  # never two triggers in a row
    assert actions[:1] in ([], ["trigger"])
    assert actions.count("trigger") == tracker.incidents


def test_escalation_timing_and_limit() -> None:
    policy = Policy(**{**BASE, "escalate_after": "10m", "max_escalations": 2})
    tracker, _, _ = run(policy, [0.9], now=NOW)
    assert tracker.alert is not None and tracker.alert.opened_at == NOW

    timeline = [(9 * MIN, []), (10 * MIN, ["escalate"]), (15 * MIN, []), (20 * MIN, ["escalate"]),
                (30 * MIN, []), (60 * MIN, [])]
    levels = []
    for offset, expected in timeline:
        decision = on_tick(tracker, policy, NOW + offset)
        tracker = decision.tracker
        assert [a.kind for a in decision.actions] == expected, offset
        levels.append(tracker.alert.escalation_level)
    assert levels == [0, 1, 1, 2, 2, 2]
    assert tracker.alert.severity == "critical"


def test_escalation_also_happens_on_a_score() -> None:
    policy = Policy(**{**BASE, "escalate_after": "1m"})
    tracker, _, _ = run(policy, [0.9], now=NOW)
    decision = on_score(tracker, score(0.9, NOW + 5000), policy, NOW + 2 * MIN)
    assert [a.kind for a in decision.actions] == ["escalate"]


def test_acknowledged_alert_never_escalates() -> None:
    policy = Policy(**{**BASE, "escalate_after": "10m"})
    tracker, _, _ = run(policy, [0.9])
    alert, tracker, actions = apply_feedback(tracker.alert, tracker, "acknowledged", policy, NOW + MIN)
    assert [a.kind for a in actions] == ["acknowledge"]
    assert tracker.status == "acknowledged" and alert.state == "acknowledged"
    assert on_tick(tracker, policy, NOW + 120 * MIN).actions == ()


def test_rul_based_entry_and_exit() -> None:
    policy = Policy(enter_p=None, rul_enter=30, rul_exit=50, min_consecutive=2, resolve_after_low=2,
                    cooldown="0s", escalate_after=None)
    values = [(0.1, 60), (0.1, 40), (0.1, 29), (0.1, 25), (0.1, 45), (0.1, 55), (0.1, 45), (0.1, 60), (0.1, 70)]
    _, statuses, actions = run(policy, values)
    assert statuses == ["idle", "idle", "pending", "triggered", "triggered", "triggered", "triggered",
                        "triggered", "resolved"]
    assert actions == ["trigger", "resolve"]


def test_rul_entry_raises_severity() -> None:
    policy = Policy(enter_p=0.9, rul_enter=30)
    assert severity_for(policy, 0.2, None) == "info"
    assert severity_for(policy, 0.2, 25) == "error"
    assert severity_for(policy, 0.2, 10) == "critical"
    assert severity_for(Policy(), 0.7, None) == "warning"
    assert severity_for(Policy(), 0.9, None) == "error"
    assert severity_for(Policy(), 0.97, None) == "critical"


def test_stale_scores_are_ignored() -> None:
    policy = Policy(**{**BASE, "min_consecutive": 2})
    tracker, _, _ = run(policy, [0.9])
    old = on_score(tracker, score(0.9, NOW - 1), policy, NOW)
    assert old.stale and old.tracker == tracker and old.actions == ()


def test_alert_ids_are_deterministic_and_unique_per_incident() -> None:
    policy = Policy(**BASE)
    first, _, _ = run(policy, [0.9, 0.1, 0.9])
    again, _, _ = run(policy, [0.9, 0.1, 0.9])
    assert first.alert.id == again.alert.id
    single, _, _ = run(policy, [0.9])
    assert single.alert.id != first.alert.id


def test_evidence_keeps_the_most_alarming_scores_contributors() -> None:
    policy = Policy(**{**BASE, "resolve_after_low": 5})
    contributors = [Contribution(feature=f"f{i}", sensor=f"s{i}", contribution=i / 10) for i in range(8)]
    s1 = score(0.85, NOW, top_contributors=contributors[:2])
    t = on_score(new_tracker(s1), s1, policy, NOW).tracker
    s2 = score(0.95, NOW + 1, top_contributors=contributors)
    t = on_score(t, s2, policy, NOW).tracker
    s3 = score(0.2, NOW + 2, top_contributors=contributors[:1])
    t = on_score(t, s3, policy, NOW).tracker
    assert t.alert.peak_p == 0.95 and t.alert.p_failure == 0.2
    assert [c.feature for c in t.alert.evidence] == ["f7", "f6", "f5", "f4", "f3"]


# ---- feedback ---------------------------------------------------------------------------------------


def _triggered(policy: Policy) -> Tracker:
    tracker, _, _ = run(policy, [0.9])
    return tracker


def test_allowed_feedback_table() -> None:
    policy = Policy(**BASE)
    t = _triggered(policy)
    assert allowed_feedback(t.alert) == ("acknowledged", "confirmed_failure", "false_alarm", "maintenance_done")
    alert, t, _ = apply_feedback(t.alert, t, "acknowledged", policy, NOW)
    assert allowed_feedback(alert) == ("confirmed_failure", "false_alarm", "maintenance_done")
    alert, t, _ = apply_feedback(alert, t, "confirmed_failure", policy, NOW)
    assert allowed_feedback(alert) == ("maintenance_done",)
    alert, t, actions = apply_feedback(alert, t, "maintenance_done", policy, NOW)
    assert [a.kind for a in actions] == ["resolve"] and alert.outcome == "confirmed_failure"
    assert allowed_feedback(alert) == ()
    with pytest.raises(InvalidTransition) as info:
        apply_feedback(alert, t, "acknowledged", policy, NOW)
    assert info.value.allowed == () and info.value.state == "resolved"


def test_acknowledging_twice_is_an_invalid_transition() -> None:
    policy = Policy(**BASE)
    t = _triggered(policy)
    alert, t, _ = apply_feedback(t.alert, t, "acknowledged", policy, NOW)
    with pytest.raises(InvalidTransition) as info:
        apply_feedback(alert, t, "acknowledged", policy, NOW)
    assert info.value.allowed == ("confirmed_failure", "false_alarm", "maintenance_done")


def test_false_alarm_resolves_with_cooldown_and_maintenance_without() -> None:
    policy = Policy(**{**BASE, "cooldown": "1h"})
    t = _triggered(policy)
    alert, t2, actions = apply_feedback(t.alert, t, "false_alarm", policy, NOW)
    assert [a.kind for a in actions] == ["resolve"] and alert.outcome == "false_alarm"
    assert t2.status == "resolved" and t2.cooldown_until_ts == t.last_ts + 3_600_000

    alert, t3, _ = apply_feedback(t.alert, t, "maintenance_done", policy, NOW)
    assert t3.status == "idle" and t3.cooldown_until_ts is None


def test_confirmed_failure_on_a_triggered_alert_acknowledges_it() -> None:
    policy = Policy(**BASE)
    t = _triggered(policy)
    alert, t, actions = apply_feedback(t.alert, t, "confirmed_failure", policy, NOW)
    assert [a.kind for a in actions] == ["acknowledge"]
    assert alert.state == "acknowledged" and alert.outcome == "confirmed_failure"


def test_feedback_on_an_old_alert_leaves_the_current_incident_alone() -> None:
    policy = Policy(**BASE)
    tracker, _, _ = run(policy, [0.9, 0.1])
    old = tracker.alert
    tracker, _, _ = run(policy, [0.9], tracker=tracker)
    tracker = on_score(tracker, score(0.9, NOW + 10_000), policy, NOW).tracker
    assert tracker.alert.id != old.id
    alert, same, actions = apply_feedback(old, tracker, "false_alarm", policy, NOW)
    assert same is tracker
    assert alert.outcome == "false_alarm" and [a.kind for a in actions] == ["feedback"]


def test_policy_rejects_inconsistent_thresholds() -> None:
    with pytest.raises(ValueError, match="exit_p"):
        Policy(enter_p=0.5, exit_p=0.6)
    with pytest.raises(ValueError, match="nothing can trigger"):
        Policy(enter_p=None)
    with pytest.raises(ValueError, match="rul_exit"):
        Policy(rul_enter=30, rul_exit=20)
    with pytest.raises(ValueError, match="nothing resolves"):
        Policy(resolve_after_low=None, resolve_after=None)
