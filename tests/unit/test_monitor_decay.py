"""Model decay: late labels joined to the alerts and scores before them, judged against the holdout."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.monitoring.decay import (
    DecaySettings,
    DecayTracker,
    HoldoutFigures,
    expected_calibration_error,
)
from forewarn.schemas import AlertEvent, AlertWindow, FeedbackEvent, FeedbackKind, GroundTruthEvent

H = 3_600_000
HORIZON = 12 * H
DAY = 24 * H
HOLDOUT = HoldoutFigures(precision=0.8, recall=0.8, calibration_error=0.03, lead_time_median_h=3.0)


def alert(alert_id: str, machine: str, opened: int, p: float = 0.8, *, revision: int = 1,
          outcome: FeedbackKind | None = None, machine_type: str = "pump") -> AlertEvent:
    action = "trigger" if revision == 1 else ("feedback" if outcome else "escalate")
    return AlertEvent(
        event_id=f"{alert_id}.{revision}", action=action, alert_id=alert_id, revision=revision,
        dedup_key=f"{machine}:failure", machine_id=machine, machine_type=machine_type, mode="failure",
        state="triggered", previous_state="pending", reason="p_failure high", severity="warning", p_failure=p,
        peak_p=p, outcome=outcome, ts=opened + (revision - 1) * H, opened_ts=opened, emitted_at=opened)


def feedback(alert_id: str, machine: str, opened: int, kind: FeedbackKind, *, failure_ts: int | None = None,
             end: int | None = None, revision: int = 2) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"{alert_id}.{revision}.feedback", kind=kind, alert_id=alert_id, dedup_key=f"{machine}:failure",
        machine_id=machine, machine_type="pump", failure_ts=failure_ts,
        alert_window=AlertWindow(start_ts=opened, end_ts=end if end is not None else opened + H),
        alert_state="acknowledged", received_at=opened + 2 * H)


def truth(machine: str, ts: int, kind: str = "failure", machine_type: str = "pump") -> GroundTruthEvent:
    return GroundTruthEvent(machine_id=machine, machine_type=machine_type, ts=ts, kind=kind)


def tracker(**overrides: int | float) -> DecayTracker:
    return DecayTracker(HORIZON, HOLDOUT, DecaySettings(**overrides), watch_start_ts=0)  # type: ignore[arg-type]


def test_perfect_model_has_full_precision_and_recall() -> None:
    t = tracker()
    for i in range(25):
        opened = DAY + i * DAY
        t.add_alert(alert(f"a{i}", f"m{i}", opened))
        t.add_ground_truth(truth(f"m{i}", opened + 2 * H))
    report = t.judge(30 * DAY)
    assert (report.precision.right, report.precision.wrong, report.precision.precision) == (25, 0, 1.0)
    assert report.precision.check.judged and not report.precision.check.decayed
    assert (report.recall.failures, report.recall.caught, report.recall.recall) == (25, 25, 1.0)
    assert report.recall.lead_time_median_h == pytest.approx(2.0)
    assert report.recall.lead_time_p10_h == pytest.approx(2.0)
    assert report.recall.check.judged and not report.recall.check.decayed
    assert not report.decayed
    assert report.summary.startswith("No decay")


def test_silent_model_has_zero_recall_judged_once_enough_failures() -> None:
    t = tracker()
    for i in range(12):
        t.add_scores([f"m{i}"], ["pump"], [DAY + i * DAY], [0.01])
        if i < 9:
            t.add_ground_truth(truth(f"m{i}", DAY + i * DAY + 5 * H))
    few = t.judge(20 * DAY).recall
    assert (few.failures, few.caught, few.recall) == (9, 0, 0.0)
    assert not few.check.judged and not few.check.decayed
    assert "not judged below 10" in few.check.summary

    for i in range(9, 12):
        t.add_ground_truth(truth(f"m{i}", DAY + i * DAY + 5 * H))
    enough = t.judge(20 * DAY)
    assert (enough.recall.failures, enough.recall.caught, enough.recall.recall) == (12, 0, 0.0)
    assert enough.recall.check.judged and enough.recall.check.decayed
    assert enough.recall.check.limit == pytest.approx(0.8 - 0.15)
    assert math.isnan(enough.recall.lead_time_median_h)
    assert enough.decayed and "Failure recall decayed" in enough.summary and "forewarn retrain" in enough.summary


def test_lead_time_distribution_and_a_failure_ends_the_at_risk_period() -> None:
    t = tracker()
    for i in range(10):
        failure = DAY + i * DAY + 12 * H
        t.add_alert(alert(f"a{i}", f"m{i}", failure - (i + 1) * H))
        t.add_ground_truth(truth(f"m{i}", failure))
    t.add_ground_truth(truth("m0", DAY + 12 * H + 3 * H))  # a second failure, after the first one's repair
    recall = t.judge(20 * DAY).recall
    assert (recall.failures, recall.caught) == (11, 10)  # the alert before the first failure is not the second's
    assert recall.lead_time_median_h == pytest.approx(5.5)
    assert recall.lead_time_p10_h == pytest.approx(1.9)
    assert recall.holdout_lead_time_median_h == 3.0


def test_false_alarm_only_once_the_horizon_has_passed() -> None:
    t = tracker()
    t.add_alert(alert("a", "m", DAY))
    before = t.judge(DAY + HORIZON - 1).precision
    assert (before.pending, before.wrong) == (1, 0)
    after = t.judge(DAY + HORIZON).precision
    assert (after.pending, after.wrong, after.precision) == (0, 1, 0.0)

    delayed = tracker(label_delay_ms=2 * H)
    delayed.add_alert(alert("a", "m", DAY))
    assert delayed.judge(DAY + HORIZON + H).precision.pending == 1
    assert delayed.judge(DAY + HORIZON + 2 * H).precision.wrong == 1


def test_failure_after_the_horizon_does_not_make_an_alert_right() -> None:
    t = tracker()
    t.add_alert(alert("a", "m", DAY))
    t.add_ground_truth(truth("m", DAY + HORIZON + H))
    report = t.judge(3 * DAY)
    assert (report.precision.right, report.precision.wrong) == (0, 1)
    assert (report.recall.failures, report.recall.caught) == (1, 0)


def _feed_everything(t: DecayTracker) -> None:
    for i in range(6):
        opened = DAY + i * DAY
        t.add_alert(alert(f"a{i}", f"m{i}", opened))
        t.add_alert(alert(f"a{i}", f"m{i}", opened, 0.9, revision=2))
        t.add_scores([f"m{i}", f"m{i}"], ["pump", "pump"], [opened, opened + H], [0.7, 0.9])
        if i % 2:
            t.add_ground_truth(truth(f"m{i}", opened + 3 * H))
            t.add_feedback(feedback(f"a{i}", f"m{i}", opened, "confirmed_failure", failure_ts=opened + 3 * H))
        else:
            t.add_feedback(feedback(f"a{i}", f"m{i}", opened, "false_alarm"))


def test_duplicates_do_not_double_count() -> None:
    once, twice = tracker(), tracker()
    _feed_everything(once)
    _feed_everything(twice)
    _feed_everything(twice)
    first, second = once.judge(10 * DAY), twice.judge(10 * DAY)
    assert first.as_dict() == second.as_dict()
    assert once.sizes == twice.sizes
    assert (first.precision.right, first.precision.wrong, first.precision.by_operator) == (3, 3, 6)
    assert first.recall.failures == 3  # ground truth and the operator's failure_ts are one failure each
    assert first.calibration.samples == 12


def test_below_minimum_reports_but_never_judges() -> None:
    t = tracker()
    for i in range(5):
        t.add_alert(alert(f"a{i}", f"m{i}", DAY))
        t.add_scores([f"m{i}"], ["pump"], [DAY], [0.9])
    report = t.judge(5 * DAY)
    assert report.precision.precision == 0.0 and report.precision.wrong == 5
    for check in report.checks:
        assert not check.judged and not check.decayed
    assert report.calibration.check.events == 5 and report.calibration.check.minimum == 200
    assert report.summary == "Not enough labels yet to judge model decay."


def test_precision_decay_is_flagged_with_what_to_do() -> None:
    t = tracker()
    for i in range(20):
        t.add_alert(alert(f"a{i}", f"m{i}", DAY + i * H))
        if i < 10:
            t.add_ground_truth(truth(f"m{i}", DAY + i * H + H))
    check = t.judge(5 * DAY).precision.check
    assert check.judged and check.decayed and check.value == 0.5
    assert check.condition == "precision_decay" and check.limit == pytest.approx(0.65)
    assert "false alarms" in check.summary


def _calibration_sample(probs: np.ndarray, failed: np.ndarray) -> DecayTracker:
    t = tracker()
    machines = [f"m{i}" for i in range(len(probs))]
    t.add_scores(machines, ["pump"] * len(probs), np.full(len(probs), DAY), probs)
    for machine, hit in zip(machines, failed, strict=True):
        if hit:
            t.add_ground_truth(truth(machine, DAY + 4 * H))
    return t


def test_calibration_of_calibrated_and_miscalibrated_samples() -> None:
    rng = np.random.default_rng(7)
    probs = rng.uniform(0, 1, 2000)
    calibrated = _calibration_sample(probs, rng.uniform(0, 1, 2000) < probs).judge(3 * DAY).calibration
    assert calibrated.known == 2000 and calibrated.check.judged
    assert calibrated.calibration_error < 0.05 and not calibrated.check.decayed

    over = np.full(300, 0.9)
    miscalibrated = _calibration_sample(over, rng.uniform(0, 1, 300) < 0.1).judge(3 * DAY).calibration
    assert miscalibrated.calibration_error > 0.6 and miscalibrated.check.decayed
    assert miscalibrated.mean_predicted_p == pytest.approx(0.9)
    assert "Calibration decayed" in miscalibrated.check.summary


def test_scores_wait_for_their_horizon_unless_a_failure_came() -> None:
    t = tracker()
    t.add_scores(["a", "b"], ["pump", "pump"], [DAY, DAY], [0.5, 0.5])
    t.add_ground_truth(truth("a", DAY + H))
    calibration = t.judge(DAY + 2 * H).calibration
    assert (calibration.known, calibration.positives, calibration.pending) == (1, 1, 1)


def test_ece_matches_the_training_definition() -> None:
    from forewarn.training.tuning import expected_calibration_error as training_ece

    rng = np.random.default_rng(3)
    prob = rng.uniform(0, 1, 500)
    y = (rng.uniform(0, 1, 500) < prob ** 2).astype(float)
    assert expected_calibration_error(y, prob) == pytest.approx(training_ece(y, prob))
    assert math.isnan(expected_calibration_error(np.zeros(0), np.zeros(0)))


def test_predicted_precision_before_labels_and_reconciled_after() -> None:
    t = tracker()
    for i in range(10):
        opened = DAY + i * H
        t.add_alert(alert(f"a{i}", f"m{i}", opened, 0.95, revision=2))  # a later event arrives first
        t.add_alert(alert(f"a{i}", f"m{i}", opened, 0.8))  # the trigger: the opening probability
    before = t.judge(DAY + 10 * H).predicted
    assert before.pending_alerts == 10 and before.predicted_precision == pytest.approx(0.8)
    assert before.reconciled_alerts == 0 and math.isnan(before.gap)

    for i in range(4):
        t.add_ground_truth(truth(f"m{i}", DAY + i * H + 2 * H))
    after = t.judge(5 * DAY).predicted
    assert after.pending_alerts == 0 and after.reconciled_alerts == 10
    assert after.reconciled_predicted == pytest.approx(0.8)
    assert after.reconciled_observed == pytest.approx(0.4)
    assert after.gap == pytest.approx(-0.4)


def test_maintenance_first_is_neither_hit_nor_false_alarm() -> None:
    t = tracker()
    t.add_alert(alert("kept", "m1", DAY))
    t.add_ground_truth(truth("m1", DAY + 3 * H, "maintenance"))
    t.add_alert(alert("repaired", "m2", DAY))
    t.add_ground_truth(truth("m2", DAY + 2 * H, "maintenance"))
    t.add_ground_truth(truth("m2", DAY + 6 * H))  # a failure in the new life: not this alert's
    report = t.judge(5 * DAY)
    assert (report.precision.maintained, report.precision.right, report.precision.wrong) == (2, 0, 0)
    assert (report.recall.failures, report.recall.caught) == (1, 0)


def test_operator_verdicts() -> None:
    t = tracker()
    # A confirmed failure stays right when maintenance follows it.
    t.add_alert(alert("c", "m1", DAY))
    t.add_feedback(feedback("c", "m1", DAY, "confirmed_failure", failure_ts=DAY + 4 * H))
    t.add_feedback(feedback("c", "m1", DAY, "maintenance_done", end=DAY + 5 * H, revision=3))
    t.add_ground_truth(truth("m1", DAY + 4 * H + 10 * 60_000))  # the same failure, 10 minutes off
    # The operator's false alarm beats a failure on the timeline.
    t.add_alert(alert("f", "m2", DAY))
    t.add_ground_truth(truth("m2", DAY + H))
    t.add_feedback(feedback("f", "m2", DAY, "false_alarm"))
    # Maintenance done, no failure: maintained, even after the horizon.
    t.add_alert(alert("w", "m3", DAY, outcome="maintenance_done", revision=2))
    # Feedback for an alert whose events were never seen still counts.
    t.add_feedback(feedback("x", "m4", DAY, "confirmed_failure", failure_ts=DAY + 2 * H))
    report = t.judge(5 * DAY)
    p = report.precision
    assert (p.alerts, p.right, p.wrong, p.maintained, p.by_operator) == (4, 2, 1, 1, 3)
    assert (report.recall.failures, report.recall.caught) == (3, 3)
    assert report.predicted.reconciled_alerts == 2  # the feedback-only alert has no opening probability


def test_machine_type_scope() -> None:
    t = tracker()
    t.add_alert(alert("p", "pump-1", DAY, machine_type="pump"))
    t.add_ground_truth(truth("pump-1", DAY + H, machine_type="pump"))
    t.add_alert(alert("f", "fan-1", DAY, machine_type="fan"))
    pumps, fans, fleet = t.judge(5 * DAY, "pump"), t.judge(5 * DAY, "fan"), t.judge(5 * DAY)
    assert (pumps.precision.right, pumps.precision.wrong, pumps.recall.failures) == (1, 0, 1)
    assert (fans.precision.right, fans.precision.wrong, fans.recall.failures) == (0, 1, 0)
    assert (fleet.precision.alerts, fleet.machine_type, pumps.machine_type) == (2, None, "pump")


def test_memory_is_bounded_and_dropped_alerts_leave_failures_unjudged() -> None:
    t = tracker(max_alerts=5, max_scores=100, max_machine_events=7)
    for i in range(10):
        t.add_alert(alert(f"a{i}", "m", DAY + i * DAY))
        t.add_ground_truth(truth("m", DAY + i * DAY + H))
    t.add_scores(["m"] * 300, ["pump"] * 300, DAY + np.arange(300) * 60_000, np.full(300, 0.2))
    assert t.sizes == {"alerts": 5, "scores": 100, "failures": 7, "maintenance": 0}
    report = t.judge(20 * DAY)
    assert report.precision.alerts == 5
    # Failures 3..9 are kept; those of dropped alerts (0..4) can no longer be judged.
    assert (report.recall.failures, report.recall.caught, report.recall.unobserved) == (5, 5, 2)


def test_watch_starts_with_the_first_alert_or_score() -> None:
    t = DecayTracker(HORIZON, HOLDOUT)
    t.add_ground_truth(truth("m", DAY))  # before anything was watched
    assert t.judge(2 * DAY).recall.unobserved == 1
    t.add_scores(["m"], ["pump"], [DAY - HORIZON], [0.1])
    assert t.judge(2 * DAY).recall.failures == 1


def test_report_is_json_ready_and_holdout_reads_the_reference() -> None:
    report = tracker().judge(DAY)
    text = json.dumps(report.as_dict(), allow_nan=False)
    assert '"decayed": false' in text and '"precision": null' in text

    figures = HoldoutFigures.from_mapping({"precision": 0.7, "recall": float("nan"), "calibration_error": 0.02,
                                           "lead_median_h": 5.0})
    assert figures == HoldoutFigures(precision=0.7, recall=None, calibration_error=0.02, lead_time_median_h=5.0)
    no_figures = DecayTracker(HORIZON, HoldoutFigures(), DecaySettings(min_alerts=1), watch_start_ts=0)
    no_figures.add_alert(alert("a", "m", DAY))
    check = no_figures.judge(3 * DAY).precision.check
    assert check.judged and not check.decayed and check.limit is None and "no holdout precision" in check.summary


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="min_alerts"):
        DecaySettings(min_alerts=0)
    with pytest.raises(ValueError, match="label_delay_ms"):
        DecaySettings(label_delay_ms=-1)
    with pytest.raises(ValueError, match="horizon_ms"):
        DecayTracker(0, HOLDOUT)
    with pytest.raises(ValueError, match="same length"):
        tracker().add_scores(["m"], ["pump"], [1, 2], [0.1])


_event = st.one_of(
    st.tuples(st.just("alert"), st.integers(0, 7), st.integers(0, 3), st.integers(0, 40), st.floats(0, 1)),
    st.tuples(st.just("verdict"), st.integers(0, 7), st.integers(0, 3), st.integers(0, 40),
              st.sampled_from(["confirmed_failure", "false_alarm", "maintenance_done", "acknowledged"])),
    st.tuples(st.just("truth"), st.integers(0, 7), st.integers(0, 3), st.integers(0, 40),
              st.sampled_from(["failure", "maintenance", "degradation_start"])),
    st.tuples(st.just("score"), st.integers(0, 7), st.integers(0, 3), st.integers(0, 40), st.floats(0, 1)),
)


def _apply(t: DecayTracker, event: tuple[str, int, int, int, object]) -> None:
    kind, alert_no, machine_no, hours, extra = event
    machine, ts = f"m{machine_no}", DAY + hours * H
    if kind == "alert":
        t.add_alert(alert(f"a{alert_no}", f"m{alert_no % 4}", DAY + alert_no * 5 * H, float(extra)))  # type: ignore[arg-type]
    elif kind == "verdict":
        failure_ts = ts if extra == "confirmed_failure" else None
        t.add_feedback(feedback(f"a{alert_no}", f"m{alert_no % 4}", DAY + alert_no * 5 * H, extra,  # type: ignore[arg-type]
                                failure_ts=failure_ts))
    elif kind == "truth":
        t.add_ground_truth(truth(machine, ts, str(extra)))
    else:
        t.add_scores([machine], ["pump"], [ts], [float(extra)])  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_event, max_size=40), now_hours=st.integers(0, 80))
def test_counts_never_exceed_totals_and_replay_changes_nothing(
        events: list[tuple[str, int, int, int, object]], now_hours: int) -> None:
    t = tracker(min_alerts=1, min_failures=1, min_scores=1)
    for event in events:
        _apply(t, event)
    report = t.judge(DAY + now_hours * H)
    p, r, c = report.precision, report.recall, report.calibration
    assert p.right + p.wrong + p.maintained + p.pending == p.alerts
    assert p.by_operator <= p.right + p.wrong
    assert r.caught <= r.failures
    assert c.positives <= c.known and c.known + c.maintained + c.pending == c.samples
    for value in (p.precision, r.recall, c.calibration_error, c.mean_predicted_p, c.observed_rate):
        assert math.isnan(value) or 0.0 <= value <= 1.0
    assert report.predicted.pending_alerts <= p.pending
    assert report.predicted.reconciled_alerts <= p.right + p.wrong

    for event in reversed(events):  # re-delivered, out of order
        _apply(t, event)
    assert t.judge(DAY + now_hours * H).as_dict() == report.as_dict()
