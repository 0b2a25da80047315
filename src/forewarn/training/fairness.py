"""Does the model serve every machine type equally well? Fairlearn's MetricFrame by ``machine_type``.

Per type: recall (failures caught), false-positive rate (healthy rows flagged), selection rate and row
count. The *gap* of a metric is its largest between-type difference; the gate compares the largest gap
with a limit. A type without failures (or without healthy rows) in the holdout has no recall (or FPR):
it is left out of that metric's gap and the report says so, rather than counting 0 as a real value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

GAP_METRICS = ("recall", "false_positive_rate")


def _recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    positives = int(y_true.sum())
    return float((y_true & y_pred).sum() / positives) if positives else float("nan")


def _false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    negatives = int((~y_true).sum())
    return float((~y_true & y_pred).sum() / negatives) if negatives else float("nan")


@dataclass
class FairnessReport:
    by_type: dict[str, dict[str, float]]
    gaps: dict[str, float]  # per metric of GAP_METRICS; NaN when fewer than two types have a value
    largest_gap: float
    worst_metric: str | None
    limit: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.largest_gap > self.limit)

    def as_dict(self) -> dict[str, Any]:
        return {"by_type": self.by_type, "gaps": self.gaps, "largest_gap": self.largest_gap,
                "worst_metric": self.worst_metric, "limit": self.limit, "passed": self.passed,
                "notes": self.notes}


def gaps_from_table(by_type: dict[str, dict[str, float]], limit: float) -> FairnessReport:
    """Gaps and the gate from per-type values (pure; :func:`fairness_report` fills the table)."""
    gaps: dict[str, float] = {}
    notes: list[str] = []
    for metric in GAP_METRICS:
        values = {t: v[metric] for t, v in by_type.items() if np.isfinite(v.get(metric, np.nan))}
        absent = sorted(set(by_type) - set(values))
        if absent:
            notes.append(f"{metric} undefined for {', '.join(absent)} in the holdout (no "
                         f"{'failures' if metric == 'recall' else 'healthy rows'}); left out of its gap")
        gaps[metric] = float(max(values.values()) - min(values.values())) if len(values) >= 2 else float("nan")
    finite = {m: g for m, g in gaps.items() if np.isfinite(g)}
    if not finite:
        notes.append("fewer than two machine types with a value: the fairness gate has nothing to compare")
    worst = max(finite, key=lambda m: finite[m]) if finite else None
    largest = finite[worst] if worst else 0.0
    return FairnessReport(by_type, gaps, largest, worst, limit, notes)


def fairness_report(y_true: np.ndarray, y_pred: np.ndarray, machine_types: np.ndarray,
                    limit: float) -> FairnessReport:
    from fairlearn.metrics import MetricFrame, count, selection_rate

    frame = MetricFrame(
        metrics={"recall": _recall, "false_positive_rate": _false_positive_rate,
                 "selection_rate": selection_rate, "count": count},
        y_true=np.asarray(y_true).astype(int),
        y_pred=np.asarray(y_pred).astype(int),
        sensitive_features=np.asarray(machine_types).astype(str),
    )
    table = frame.by_group
    y_true = np.asarray(y_true).astype(int)
    types = np.asarray(machine_types).astype(str)
    by_type = {
        str(t): {**{m: float(table.loc[t, m]) for m in table.columns},
                 "positives": float(y_true[types == str(t)].sum())}
        for t in table.index
    }
    return gaps_from_table(by_type, limit)
