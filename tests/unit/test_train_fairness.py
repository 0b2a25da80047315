"""Fairness by machine type: per-type recall and false-positive rate, the largest gap, and the gate."""

from __future__ import annotations

import numpy as np

from forewarn.training.fairness import fairness_report, gaps_from_table


def test_gap_is_the_largest_between_type_difference() -> None:
    # pump: 4 failures, 4 caught; 4 healthy, 0 flagged. fan: 4 failures, 2 caught; 4 healthy, 1 flagged.
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 2)
    y_pred = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0])
    types = np.array(["pump"] * 8 + ["fan"] * 8)
    report = fairness_report(y_true, y_pred, types, limit=0.2)
    assert report.by_type["pump"]["recall"] == 1.0 and report.by_type["fan"]["recall"] == 0.5
    assert report.by_type["pump"]["false_positive_rate"] == 0.0
    assert report.by_type["fan"]["false_positive_rate"] == 0.25
    assert report.gaps == {"recall": 0.5, "false_positive_rate": 0.25}
    assert report.largest_gap == 0.5 and report.worst_metric == "recall"
    assert not report.passed
    assert fairness_report(y_true, y_pred, types, limit=0.5).passed


def test_type_without_failures_is_left_out_of_the_recall_gap() -> None:
    table = {
        "pump": {"recall": 0.9, "false_positive_rate": 0.05},
        "fan": {"recall": float("nan"), "false_positive_rate": 0.10},
        "press": {"recall": 0.7, "false_positive_rate": 0.02},
    }
    report = gaps_from_table(table, limit=0.25)
    assert abs(report.gaps["recall"] - 0.2) < 1e-12
    assert abs(report.gaps["false_positive_rate"] - 0.08) < 1e-12
    assert report.passed
    assert any("fan" in note and "recall" in note for note in report.notes)


def test_single_type_has_nothing_to_compare() -> None:
    report = gaps_from_table({"pump": {"recall": 0.4, "false_positive_rate": 0.3}}, limit=0.1)
    assert report.largest_gap == 0.0 and report.passed
    assert any("fewer than two" in note for note in report.notes)
