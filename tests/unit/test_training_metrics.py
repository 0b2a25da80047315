"""Benchmark scores follow the published definitions."""

from __future__ import annotations

import math

import numpy as np

from forewarn.training.metrics import binary_scores, f1_best_threshold, nasa_score, pr_auc, rmse


def test_rmse() -> None:
    assert rmse(np.array([0.0, 0.0]), np.array([3.0, -4.0])) == math.sqrt(12.5)


def test_nasa_score_penalizes_late_more_than_early() -> None:
    late = nasa_score(np.array([50.0]), np.array([60.0]))
    early = nasa_score(np.array([50.0]), np.array([40.0]))
    assert late == math.exp(1.0) - 1.0
    assert early == math.exp(10 / 13) - 1.0
    assert late > early
    assert nasa_score(np.array([5.0]), np.array([5.0])) == 0.0


def test_binary_scores() -> None:
    s = binary_scores(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1]))
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["precision"] == s["recall"] == s["f1"] == 2 / 3
    assert binary_scores(np.zeros(3), np.zeros(3))["f1"] == 0.0


def test_threshold_separates_a_separable_sample() -> None:
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    t = f1_best_threshold(y, scores)
    assert 0.3 < t <= 0.7
    assert binary_scores(y, scores >= t)["f1"] == 1.0
    assert pr_auc(y, scores) == 1.0
