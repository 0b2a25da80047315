"""The retraining trigger policy: sustained drift, decay, new labels; debounce, cooldown, already running."""

from __future__ import annotations

from dataclasses import replace

from forewarn.retraining.trigger import (
    TriggerPolicy,
    TriggerState,
    WindowSignal,
    evaluate,
    observe_run,
    trigger_kind,
)

POLICY = TriggerPolicy(sustained_windows=3, min_new_labels=100, cooldown_s=6 * 3600, debounce_s=600)
T0 = 1_000_000.0


def window(i: int, *, drift: bool = False, decay: bool = False, labels: int = 0, detail: str = "") -> WindowSignal:
    return WindowSignal(window_end_ts=1_767_225_600_000 + i * 60_000, drift_active=drift, decay_active=decay,
                        new_labels=labels, decay_detail=detail)


def run(signals: list[WindowSignal], state: TriggerState | None = None, now: float = T0):
    state = state or TriggerState()
    decisions = []
    for s in signals:
        decision, state = evaluate(POLICY, state, s, now)
        decisions.append(decision)
    return decisions, state


def test_quiet_windows_do_not_trigger_and_say_where_the_counts_stand() -> None:
    decisions, state = run([window(0, labels=10), window(1, drift=True, labels=5)])
    assert not any(d.retrain for d in decisions)
    assert decisions[-1].reason == ("no trigger: 1 of 3 drifted windows in a row, no decay, 15 of 100 new labels")
    assert decisions[-1].blocked_by is None and state.windows == 2
    assert state.last_window_end_ts == window(1).window_end_ts


def test_sustained_drift_triggers_on_the_kth_consecutive_window() -> None:
    decisions, state = run([window(i, drift=True) for i in range(3)])
    assert [d.retrain for d in decisions] == [False, False, True]
    assert decisions[-1].reason == "sustained drift: 3 of the last 3 windows drifted"
    assert decisions[-1].kinds == ("drift",)
    assert state.drifted_streak == 0 and state.triggers == 1 and state.last_trigger_at == T0


def test_a_clean_window_breaks_the_drift_streak() -> None:
    decisions, state = run([window(0, drift=True), window(1, drift=True), window(2), window(3, drift=True)])
    assert not any(d.retrain for d in decisions)
    assert state.drifted_streak == 1


def test_decay_triggers_at_once_with_its_detail() -> None:
    decisions, _ = run([window(0, decay=True, detail="live precision 0.41 below the holdout's 0.72")])
    assert decisions[0].retrain
    assert decisions[0].reason == "decay: live precision 0.41 below the holdout's 0.72"
    assert decisions[0].kinds == ("decay",)


def test_enough_new_labels_trigger_and_the_count_starts_again() -> None:
    decisions, state = run([window(0, labels=60), window(1, labels=60)])
    assert [d.retrain for d in decisions] == [False, True]
    assert decisions[-1].reason == "new labels: 120 since the last training"
    assert state.labels_since_training == 0


def test_several_causes_are_all_named() -> None:
    state = TriggerState(drifted_streak=2, labels_since_training=99)
    decision, _ = evaluate(POLICY, state, window(0, drift=True, decay=True, labels=1), T0)
    assert decision.retrain and decision.kinds == ("drift", "decay", "labels")
    assert decision.reason.startswith("sustained drift: 3 of the last 3 windows drifted; decay: ")


def test_already_running_holds_it_back_and_keeps_the_streak() -> None:
    state = observe_run(TriggerState(drifted_streak=2), running=True, now=T0)
    decision, state = evaluate(POLICY, state, window(0, drift=True), T0 + 1)
    assert not decision.retrain and decision.blocked_by == "running"
    assert decision.reason.startswith("a retraining run is already running (wanted: sustained drift")
    assert state.drifted_streak == 3, "the cause is kept: it triggers once the run and cooldown are over"


def test_debounce_after_a_trigger() -> None:
    state = TriggerState(last_trigger_at=T0 - 100)
    decision, _ = evaluate(POLICY, state, window(0, decay=True), T0)
    assert not decision.retrain and decision.blocked_by == "debounce"
    assert decision.reason.startswith("debounce: triggered 100 s ago (500 s left)")


def test_cooldown_after_a_run_then_it_triggers() -> None:
    state = observe_run(observe_run(TriggerState(), True, T0 - 3600), False, T0 - 3600 + 60)
    assert state.last_run_started_at == T0 - 3600 and state.last_run_ended_at == T0 - 3540 and not state.running
    decision, state = evaluate(POLICY, state, window(0, decay=True), T0)
    assert not decision.retrain and decision.blocked_by == "cooldown"
    assert decision.reason.startswith("cooldown: the last run ended 59 min ago (5.0 h left)")
    later = T0 - 3540 + POLICY.cooldown_s
    decision, _ = evaluate(POLICY, state, window(1, decay=True), later)
    assert decision.retrain


def test_cooldown_counts_from_the_start_of_a_run_whose_end_is_unknown() -> None:
    state = TriggerState(last_run_started_at=T0 - 60)
    decision, _ = evaluate(POLICY, state, window(0, decay=True), T0)
    assert decision.blocked_by == "cooldown"


def test_observe_run_is_idempotent() -> None:
    state = TriggerState()
    assert observe_run(state, False, T0) == state
    running = observe_run(state, True, T0)
    assert observe_run(running, True, T0 + 5) == running
    assert replace(running, running=False, last_run_ended_at=T0 + 5) == observe_run(running, False, T0 + 5)


def test_trigger_kind_of_a_reason() -> None:
    assert trigger_kind("sustained drift: 3 of the last 3 windows drifted") == "drift"
    assert trigger_kind("decay: live precision 0.4") == "decay"
    assert trigger_kind("new labels: 120 since the last training") == "labels"
    assert trigger_kind("the plant moved") == "manual"
