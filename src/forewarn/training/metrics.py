"""Scores for the benchmarks, written out so the protocol (cap, asymmetry, threshold) is visible."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    diff = np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)
    return float(np.sqrt(np.mean(diff * diff)))


def nasa_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """PHM08 score: late predictions (d > 0) cost more than early ones, because a late call is a failure.

    ``sum(exp(-d/13) - 1)`` for ``d < 0`` and ``sum(exp(d/10) - 1)`` for ``d >= 0``, ``d = pred - true``.
    """
    d = np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def binary_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of hard 0/1 predictions (0 where undefined), plus the counts."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = int(np.sum(y_true & y_pred))
    fp = int(np.sum(~y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "n": int(len(y_true)),
        "positives": int(y_true.sum()),
    }


def pr_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (no optimistic interpolation)."""
    y_true = np.asarray(y_true)
    if y_true.sum() == 0:
        return float("nan")
    return float(average_precision_score(y_true, scores))


def f1_best_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximizes F1 on the given (training) predictions.

    Returned as the midpoint between the chosen score and the next lower one, so a slightly different
    score distribution on new data does not flip the borderline cases.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=float)
    if y_true.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    best = int(np.argmax(f1[:-1]))
    chosen = float(thresholds[best])
    lower = scores[scores < chosen]
    return float((chosen + lower.max()) / 2.0) if len(lower) else chosen
