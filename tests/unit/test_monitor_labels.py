"""The monitor's label book: what counts as a label of the champion, and when decay may be claimed."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry
from tests.unit.test_monitor_decay import H, alert, feedback

from forewarn.monitoring.drift import WindowDrift
from forewarn.monitoring.monitor import WindowResult
from forewarn.monitoring.reference import Reference
from forewarn.services.monitor.labels import DecayJudge, LabelBook
from forewarn.services.monitor.metrics import MonitorMetrics


def _reference() -> Reference:
    return Reference(model_version="3", features={}, thresholds={}, scores=np.zeros(0), score_threshold=0.1,
                     holdout={"precision": 0.9, "recall": 0.9, "calibration_error": 0.02}, horizon="12h",
                     horizon_ms=12 * H)


def _window(end_ts: int) -> WindowResult:
    return WindowResult(0, [], WindowDrift(), {"window_start_ts": 0, "window_end_ts": end_ts}, {})


def test_model_health_alerts_and_other_versions_are_not_labels_of_the_champion() -> None:
    book = LabelBook()
    book.reset("3", _reference())
    book.observe(alert("a1", "model:m:all", 0, machine_type="model_health"))
    book.observe(alert("a2", "p1", 0).model_copy(update={"model_version": "2"}))
    book.observe(alert("a3", "p2", 0).model_copy(update={"model_version": "3"}))
    assert book.tracker is not None and book.tracker.sizes["alerts"] == 1


def test_without_any_label_source_no_decay_is_claimed_and_with_operator_verdicts_it_is() -> None:
    book = LabelBook()
    book.reset("3", _reference())
    judge = DecayJudge(book, "m", MonitorMetrics(CollectorRegistry()))
    for k in range(30):
        book.observe(alert(f"a{k}", f"p{k}", k * 60_000).model_copy(update={"model_version": "3"}))
    book.add_scores([{"machine_id": "p1", "machine_type": "pump", "ts": k * 1000, "p_failure": 0.9}
                     for k in range(300)])
    assert judge(_window(100 * H)) == []  # nothing but our own alerts and scores: no evidence either way
    for k in range(30):
        book.observe(feedback(f"a{k}", f"p{k}", k * 60_000, "false_alarm"))
    events = judge(_window(100 * H))
    precision = [e for e in events if e.condition == "precision_decay"]
    assert precision and precision[0].active and precision[0].value < 0.5
    assert book.new_labels == 30
