"""Features for remaining-useful-life regression on run-to-failure fleets (C-MAPSS layout).

The pipeline, fitted on training machines only:

1. operating conditions from the settings, sensors z-scored per condition, constant sensors dropped;
2. a linear health index (ridge regression of the capped RUL on the normalized sensors) that pools the
   weak, noisy sensor trends into one stronger signal trees can split on;
3. causal per-machine rolling means, standard deviations, slopes, EWMAs, drift from the machine's own
   first readings, and the cycle count, for every kept sensor and the health index.

All of it is causal (see :mod:`forewarn.training.rolling`), so the features of a run cut at cycle ``t``
equal those of the full run at ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from forewarn.training.conditions import ConditionScaler, OperatingConditions
from forewarn.training.rolling import baseline_mean, ewma, rolling_stats

UNIT = "unit"
CYCLE = "cycle"


@dataclass(frozen=True)
class FeatureSpec:
    """Which windows to compute; the defaults were chosen by grouped CV on FD001/FD003 training engines."""

    mean_windows: tuple[int, ...] = (5, 10, 20, 30)
    std_windows: tuple[int, ...] = (10, 30)
    slope_windows: tuple[int, ...] = (10, 20, 40)
    ewm_spans: tuple[float, ...] = (10.0, 30.0)
    baseline_cycles: int = 20
    health_index: bool = True
    # A second index fitted on the uncapped fraction of life used, which also sees the early, slow drift.
    # Off: in grouped CV it was a wash (FD001 8.88 -> 8.90, FD003 9.81 -> 9.77 with the final model).
    life_index: bool = False
    hi_mean_windows: tuple[int, ...] = (5, 10, 20, 30)
    hi_slope_windows: tuple[int, ...] = (10, 20, 40, 80)
    rul_cap: float = 125.0


def piecewise_rul(frame: pd.DataFrame, cap: float | None) -> np.ndarray:
    """Remaining cycles of each training row (last cycle = 0), optionally capped: the standard target.

    The cap encodes that a healthy engine shows no trend: before degradation starts the RUL is not
    observable, so the target is flat at ``cap``.
    """
    last = frame.groupby(UNIT)[CYCLE].transform("max").to_numpy()
    rul = (last - frame[CYCLE].to_numpy()).astype(float)
    return np.minimum(rul, cap) if cap is not None else rul


@dataclass
class DegradationFeaturizer:
    """Fit on training runs (with their RUL target); transform any runs of the same fleet."""

    sensors: Sequence[str]
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    conditions_: OperatingConditions | None = None
    scaler_: ConditionScaler | None = None
    health_: Ridge | None = None
    life_: Ridge | None = None

    def fit(self, train: pd.DataFrame, target: np.ndarray) -> DegradationFeaturizer:
        self.conditions_ = OperatingConditions().fit(train)
        condition = self.conditions_.assign(train)
        self.scaler_ = ConditionScaler(self.sensors).fit(train, condition, self.conditions_.n_conditions)
        scaled = self.scaler_.transform(train, condition).to_numpy()
        if self.spec.health_index:
            self.health_ = Ridge(alpha=1.0).fit(scaled, np.asarray(target) / self.spec.rul_cap)
        if self.spec.life_index:
            cycles = train[CYCLE].to_numpy(dtype=float)
            fraction = cycles / train.groupby(UNIT)[CYCLE].transform("max").to_numpy(dtype=float)
            self.life_ = Ridge(alpha=1.0).fit(scaled, fraction)
        return self

    @property
    def kept_sensors(self) -> list[str]:
        return [] if self.scaler_ is None else list(self.scaler_.kept_)

    def transform(self, runs: pd.DataFrame) -> pd.DataFrame:
        """One feature row per input row; ``runs`` must be sorted by unit, then cycle."""
        if self.conditions_ is None or self.scaler_ is None:
            raise RuntimeError("DegradationFeaturizer.transform called before fit")
        condition = self.conditions_.assign(runs)
        scaled = self.scaler_.transform(runs, condition)
        groups = runs[UNIT].to_numpy()
        spec = self.spec
        blocks: list[pd.DataFrame] = [pd.DataFrame({CYCLE: runs[CYCLE].to_numpy(dtype=float)}, index=runs.index)]
        if self.conditions_.n_conditions > 1:
            blocks.append(pd.DataFrame({"condition": condition}, index=runs.index))
        blocks.append(_signal_features(scaled, groups, spec, spec.mean_windows, spec.slope_windows, True))
        indices = {"hi": self.health_, "li": self.life_}
        fitted = {name: model for name, model in indices.items() if model is not None}
        if fitted:
            hi = pd.DataFrame({n: m.predict(scaled.to_numpy()) for n, m in fitted.items()}, index=runs.index)
            blocks.append(_signal_features(hi, groups, spec, spec.hi_mean_windows, spec.hi_slope_windows, False))
        return pd.concat(blocks, axis=1)


def _signal_features(
    signals: pd.DataFrame,
    groups: np.ndarray,
    spec: FeatureSpec,
    mean_windows: Sequence[int],
    slope_windows: Sequence[int],
    with_std: bool,
) -> pd.DataFrame:
    values = signals.to_numpy(dtype=float)
    names = list(signals.columns)
    out: dict[str, np.ndarray] = {}

    def put(suffix: str, block: np.ndarray) -> None:
        for j, name in enumerate(names):
            out[f"{name}_{suffix}"] = block[:, j]

    put("raw", values)
    windows = sorted(set(mean_windows) | set(slope_windows) | (set(spec.std_windows) if with_std else set()))
    for w in windows:
        mean, std, slope = rolling_stats(values, groups, w)
        if w in mean_windows:
            put(f"mean{w}", mean)
        if with_std and w in spec.std_windows:
            put(f"std{w}", std)
        if w in slope_windows:
            put(f"slope{w}", slope)
    for span in spec.ewm_spans:
        put(f"ewm{int(span)}", ewma(values, groups, span))
    if spec.baseline_cycles > 0:
        base = baseline_mean(values, groups, spec.baseline_cycles)
        smooth = ewma(values, groups, spec.ewm_spans[-1]) if spec.ewm_spans else values
        put("drift", smooth - base)
    return pd.DataFrame(out, index=signals.index)
