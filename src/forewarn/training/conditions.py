"""Operating conditions and per-condition sensor normalization for fleets like C-MAPSS.

In FD002/FD004 the engines fly six operating conditions (altitude, Mach, throttle) and the condition moves
the sensors far more than wear does; normalizing each sensor by the statistics of its own condition leaves
the wear signal. FD001/FD003 have one condition, where the same code reduces to plain standardization.
Everything is fitted on training rows only and applied unchanged to validation and test rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# The C-MAPSS settings sit on a few nominal values plus small noise (altitude in kft, Mach, throttle
# angle); rounding to these decimals recovers the nominal grid without knowing it in advance.
DEFAULT_SETTING_DECIMALS: Mapping[str, int] = {"setting1": 0, "setting2": 2, "setting3": 0}


@dataclass
class OperatingConditions:
    """Learns the operating conditions from training settings and assigns any row to the nearest one.

    Rounded setting tuples seen in less than ``min_share`` of the training rows are noise around a real
    condition (a value just across a rounding edge) and are folded into the nearest frequent one.
    """

    decimals: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SETTING_DECIMALS))
    min_share: float = 0.01
    centroids_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.decimals)

    @property
    def n_conditions(self) -> int:
        return 0 if self.centroids_ is None else len(self.centroids_)

    def fit(self, frame: pd.DataFrame) -> OperatingConditions:
        settings = frame[self.columns].to_numpy(dtype=float)
        rounded = np.column_stack([np.round(settings[:, i], d) for i, d in enumerate(self.decimals.values())])
        tuples, counts = np.unique(rounded, axis=0, return_counts=True)
        frequent = tuples[counts >= self.min_share * len(rounded)]
        if len(frequent) == 0:  # pathological tiny frame: fall back to the most common tuple
            frequent = tuples[[int(np.argmax(counts))]]
        # Centroids are the mean raw settings of the rows nearest each frequent tuple.
        spread = settings.std(axis=0)
        self.scale_ = np.where(spread > 0, spread, 1.0)
        labels = self._nearest(settings, frequent)
        self.centroids_ = np.vstack([settings[labels == k].mean(axis=0) for k in range(len(frequent))])
        return self

    def _nearest(self, settings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        assert self.scale_ is not None
        scaled = settings / self.scale_
        dist = ((scaled[:, None, :] - (centroids / self.scale_)[None, :, :]) ** 2).sum(axis=2)
        return dist.argmin(axis=1)

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """Condition index (0..n_conditions-1) of each row."""
        if self.centroids_ is None:
            raise RuntimeError("OperatingConditions.assign called before fit")
        return self._nearest(frame[self.columns].to_numpy(dtype=float), self.centroids_)


@dataclass
class ConditionScaler:
    """Per-condition z-scores of the sensors; drops sensors that carry no variance in training.

    A sensor is dropped when its within-condition standard deviation is zero or when one value covers at
    least ``max_mode_share`` of the training rows (quantized, quasi-constant readings such as FD001's s6):
    both only add noise once divided by a tiny standard deviation.
    """

    sensors: Sequence[str]
    max_mode_share: float = 0.95
    kept_: list[str] = field(default_factory=list)
    dropped_: list[str] = field(default_factory=list)
    mean_: np.ndarray | None = None  # (n_conditions, n_kept)
    std_: np.ndarray | None = None

    def fit(self, frame: pd.DataFrame, condition: np.ndarray, n_conditions: int) -> ConditionScaler:
        kept: list[str] = []
        for name in self.sensors:
            values = frame[name].to_numpy(dtype=float)
            within_std = max(
                (values[condition == k].std() for k in range(n_conditions) if (condition == k).any()),
                default=0.0,
            )
            mode_shares = [
                pd.Series(values[condition == k]).value_counts(normalize=True).iloc[0]
                for k in range(n_conditions)
                if (condition == k).any()
            ]
            if within_std <= 1e-12 or float(np.median(mode_shares)) >= self.max_mode_share:
                self.dropped_.append(name)
            else:
                kept.append(name)
        self.kept_ = kept
        values = frame[kept].to_numpy(dtype=float)
        global_mean, global_std = values.mean(axis=0), values.std(axis=0)
        means, stds = [], []
        for k in range(n_conditions):
            rows = values[condition == k]
            if len(rows) < 2:  # unseen condition in training: fall back to the pooled statistics
                means.append(global_mean)
                stds.append(global_std)
            else:
                means.append(rows.mean(axis=0))
                stds.append(rows.std(axis=0))
        self.mean_ = np.vstack(means)
        std = np.vstack(stds)
        self.std_ = np.where(std > 1e-12, std, 1.0)
        return self

    def transform(self, frame: pd.DataFrame, condition: np.ndarray) -> pd.DataFrame:
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError("ConditionScaler.transform called before fit")
        values = frame[self.kept_].to_numpy(dtype=float)
        scaled = (values - self.mean_[condition]) / self.std_[condition]
        return pd.DataFrame(scaled, columns=self.kept_, index=frame.index)
