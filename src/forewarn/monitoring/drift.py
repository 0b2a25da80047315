"""Data drift of live windows against a model's reference, as an Evidently statistical test.

Every monitored feature of a machine type is compared with its reference column by the shift of its
median, in units of the reference's interquartile range, registered as an Evidently ``StatTest``
(``forewarn_median_shift``) so the decision and Evidently's HTML report are the same test. Why not
Evidently's default (normed Wasserstein distance for numerical columns, KS below 1,000 rows): measured on
the simulated plant, a clean window in which a few machines degrade (the failures the model is for) moved
the Wasserstein distance past any threshold that still caught a sensor recalibration, and KS p-values
treat a time-contiguous window as independent draws. A recalibration, a gain change or a new operating
regime moves every machine of a type, hence the median; a minority of degrading machines hardly does.

The threshold per feature is the reference's own: a floor (0.1 IQR) or, when the reference's clean time
blocks already differ more than that, a margin above the largest such shift (:func:`null_threshold`).

A sensor is named when one of its monitored features drifted; the window's drift share is the share of
monitored features that drifted. Pure apart from the lazy Evidently import; the HTML report is built only
when asked (:func:`report_html`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

STAT_TEST = "forewarn_median_shift"
DEFAULT_THRESHOLD = 0.1  # a shift of the median by a tenth of the reference's interquartile range
NULL_MARGIN = 2.0  # above the largest shift between a clean reference block and the reference
SEPARATOR = "__"


def sensor_of(feature: str) -> str:
    return feature.split(SEPARATOR, 1)[0]


def _median_shift(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float
                  ) -> tuple[float, bool]:
    """|median(current) - median(reference)| / IQR(reference): how far the typical machine moved."""
    ref = reference.to_numpy(np.float64)
    q1, median, q3 = np.quantile(ref, [0.25, 0.5, 0.75])
    scale = max(float(q3 - q1), 1e-3 * max(abs(float(median)), 1.0), 1e-9)
    score = abs(float(np.median(current.to_numpy(np.float64))) - float(median)) / scale
    return score, score >= threshold


_registered: list[Any] = []


def _stat_test() -> Any:
    """Evidently's StatTest for the median shift, registered once (so the HTML report uses it by name)."""
    if not _registered:
        from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
        from evidently.legacy.core import ColumnType

        test = StatTest(name=STAT_TEST, display_name="median shift (IQR of reference)",
                        allowed_feature_types=[ColumnType.Numerical], default_threshold=DEFAULT_THRESHOLD)
        register_stattest(test, _median_shift)
        _registered.append(test)
    return _registered[0]


def warm_up() -> None:
    """Import Evidently and register the test now (seconds), so the first window is not late."""
    _stat_test()


def distance(reference: np.ndarray, current: np.ndarray, test: Any | None = None) -> float:
    """The drift score of two samples through Evidently's test (NaN dropped); NaN when either is empty."""
    from evidently.legacy.core import ColumnType

    ref = reference[np.isfinite(reference)]
    cur = current[np.isfinite(current)]
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    result = (test or _stat_test())(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, DEFAULT_THRESHOLD)
    return float(result.drift_score)


def null_threshold(reference: np.ndarray, blocks: Sequence[np.ndarray], test: Any | None = None) -> float:
    """The drift threshold a feature earns from its own clean history: the floor, or a margin above the
    largest score between one time block of the reference period and the whole reference."""
    distances = [d for d in (distance(reference, b, test) for b in blocks if b.size) if np.isfinite(d)]
    return max(DEFAULT_THRESHOLD, NULL_MARGIN * max(distances)) if distances else DEFAULT_THRESHOLD


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    score: float
    threshold: float

    @property
    def drifted(self) -> bool:
        return bool(np.isfinite(self.score) and self.score >= self.threshold)


@dataclass(frozen=True)
class TypeDrift:
    """One machine type in one window."""

    machine_type: str
    rows: int
    features: tuple[FeatureDrift, ...]
    judged: bool  # enough rows to judge; otherwise nothing below raises a condition

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        return tuple(f for f in self.features if f.drifted)

    @property
    def share(self) -> float:
        scored = [f for f in self.features if np.isfinite(f.score)]
        return len([f for f in scored if f.drifted]) / len(scored) if scored else 0.0

    @property
    def sensors(self) -> list[str]:
        """Drifted sensors, most drifted first (by the largest score-to-threshold ratio of their features)."""
        worst: dict[str, float] = {}
        for f in self.drifted:
            worst[sensor_of(f.feature)] = max(worst.get(sensor_of(f.feature), 0.0), f.score / f.threshold)
        return sorted(worst, key=lambda s: -worst[s])

    @property
    def active(self) -> bool:
        return self.judged and bool(self.drifted)

    def as_dict(self) -> dict[str, Any]:
        return {"machine_type": self.machine_type, "rows": self.rows, "judged": self.judged,
                "share": self.share, "sensors": self.sensors,
                "features": {f.feature: {"score": _finite_or_none(f.score), "threshold": f.threshold,
                                         "drifted": f.drifted} for f in self.features}}


@dataclass(frozen=True)
class ScoreDrift:
    rows: int
    score: float
    threshold: float
    judged: bool

    @property
    def active(self) -> bool:
        return self.judged and bool(np.isfinite(self.score) and self.score >= self.threshold)


@dataclass
class WindowDrift:
    types: dict[str, TypeDrift] = field(default_factory=dict)
    scores: ScoreDrift | None = None


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def type_drift(machine_type: str, reference: pd.DataFrame, current: pd.DataFrame,
               thresholds: Mapping[str, float], min_rows: int) -> TypeDrift:
    test = _stat_test()
    features = tuple(
        FeatureDrift(name, distance(reference[name].to_numpy(np.float64), current[name].to_numpy(np.float64), test)
                     if name in current.columns else float("nan"), float(threshold))
        for name, threshold in thresholds.items() if name in reference.columns
    )
    return TypeDrift(machine_type, len(current), features, judged=len(current) >= min_rows)


def score_drift(reference: np.ndarray, current: np.ndarray, threshold: float, min_rows: int) -> ScoreDrift:
    return ScoreDrift(int(current.size), distance(reference, current), threshold, judged=current.size >= min_rows)


def report_html(reference: pd.DataFrame, current: pd.DataFrame, thresholds: Mapping[str, float]) -> str:
    """Evidently's data-drift report of one machine type's window, with the same test and thresholds the
    monitor judged by (so the report and the alert agree)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in thresholds if c in reference.columns and c in current.columns]
    report = Report([DataDriftPreset(columns=columns, method=STAT_TEST,
                                     per_column_threshold={c: float(thresholds[c]) for c in columns})])
    snapshot = report.run(current[columns].reset_index(drop=True), reference[columns].reset_index(drop=True))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        snapshot.save_html(str(path))
        return path.read_text(encoding="utf-8")
