"""Failure classification on AI4I 2020 from sensor readings only, with leakage-free validation.

The failure-mode flags (TWF, HDF, PWF, OSF, RNF) are the label broken down by cause; a model that sees
them scores F1 > 0.99 and is useless in a plant. :func:`build_ai4i_features` therefore works from an
allow-list of sensor columns and refuses any request that would let a flag or the label through.

The decision threshold is part of the model: it is chosen on out-of-fold predictions *inside* each
training fold, never on the fold being scored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forewarn.training.datasets import AI4I_LEAKY_COLUMNS, AI4I_TARGET
from forewarn.training.metrics import f1_best_threshold

# Raw sensor columns as published -> feature names.
AI4I_SENSOR_COLUMNS: dict[str, str] = {
    "Air temperature [K]": "air_temp_k",
    "Process temperature [K]": "process_temp_k",
    "Rotational speed [rpm]": "speed_rpm",
    "Torque [Nm]": "torque_nm",
    "Tool wear [min]": "tool_wear_min",
}
AI4I_TYPE_COLUMN = "Type"
# Product quality variant as an ordered code: low, medium, high.
AI4I_TYPE_CODES: dict[str, int] = {"L": 0, "M": 1, "H": 2}
FORBIDDEN_COLUMNS: frozenset[str] = frozenset({*AI4I_LEAKY_COLUMNS, AI4I_TARGET})


class LeakageError(ValueError):
    """A label-derived column was about to become a model input."""


def assert_no_leakage(columns: Iterable[str]) -> None:
    """Raise :class:`LeakageError` if any column is the label or a failure-mode flag."""
    leaked = sorted(set(columns) & FORBIDDEN_COLUMNS)
    if leaked:
        raise LeakageError(f"label-derived columns must never be features: {leaked}")


def build_ai4i_features(frame: pd.DataFrame, derived: bool = True) -> pd.DataFrame:
    """Feature matrix from the sensor columns and Type only, plus physically motivated combinations.

    ``power_w`` (torque x angular speed) drives power failures, ``temp_diff_k`` (process minus air) heat
    dissipation failures, ``strain`` (tool wear x torque) overstrain failures. Every other column of
    ``frame`` (ids, the label, failure-mode flags) is ignored by construction.
    """
    missing = [c for c in (*AI4I_SENSOR_COLUMNS, AI4I_TYPE_COLUMN) if c not in frame.columns]
    if missing:
        raise KeyError(f"AI4I frame lacks sensor columns {missing}")
    out = frame[list(AI4I_SENSOR_COLUMNS)].rename(columns=AI4I_SENSOR_COLUMNS).astype(float)
    types = frame[AI4I_TYPE_COLUMN].map(AI4I_TYPE_CODES)
    if types.isna().any():
        bad = sorted(frame.loc[types.isna(), AI4I_TYPE_COLUMN].astype(str).unique())
        raise ValueError(f"unknown AI4I Type values {bad}; expected L, M or H")
    out["type_code"] = types.astype(float)
    if derived:
        out["power_w"] = out["torque_nm"] * out["speed_rpm"] * (2.0 * np.pi / 60.0)
        out["temp_diff_k"] = out["process_temp_k"] - out["air_temp_k"]
        out["strain"] = out["tool_wear_min"] * out["torque_nm"]
    assert_no_leakage(out.columns)
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class ClassifierConfig:
    """LightGBM settings and validation layout; chosen by stratified CV, never on a scored fold."""

    seeds: tuple[int, ...] = (0,)
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "n_estimators": 400,
            "learning_rate": 0.05,
            "num_leaves": 15,
            # Some failure regions hold a handful of rows (e.g. overstrain of H-type tools): let leaves
            # be that small, without shrinkage pulling them back.
            "min_child_samples": 2,
            "subsample": 0.9,
            "subsample_freq": 1,
            "colsample_bytree": 0.9,
            "reg_lambda": 0.0,
            # The failure mechanisms are sharp thresholds (power, temperature gap, strain); LightGBM's
            # default 255 histogram bins blur them, misfiling rows near each edge. Fine bins fix that.
            "max_bin": 4095,
            "min_data_in_bin": 1,
        }
    )
    outer_folds: int = 5
    inner_folds: int = 4
    num_threads: int = 2


class FailureClassifier:
    """Seed-averaged LightGBM probabilities plus a threshold learned from inner out-of-fold scores."""

    def __init__(self, config: ClassifierConfig | None = None, seed: int = 0) -> None:
        self.config = config or ClassifierConfig()
        self.seed = seed
        self._models: list[Any] = []
        self.threshold_: float = 0.5

    def _fit_models(self, x: pd.DataFrame, y: np.ndarray) -> list[Any]:
        import lightgbm as lgb  # heavy: imported only where a model is trained

        assert_no_leakage(x.columns)
        models = []
        for s in self.config.seeds:
            model = lgb.LGBMClassifier(
                **self.config.params,
                random_state=self.seed * 1000 + s,
                deterministic=True,
                force_row_wise=True,
                n_jobs=self.config.num_threads,
                verbose=-1,
            )
            models.append(model.fit(x.to_numpy(dtype=np.float64), y))
        return models

    @staticmethod
    def _proba(models: list[Any], x: pd.DataFrame) -> np.ndarray:
        values = x.to_numpy(dtype=np.float64)
        return np.mean([m.predict_proba(values)[:, 1] for m in models], axis=0)

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> FailureClassifier:
        """Choose the threshold on inner out-of-fold probabilities, then fit on all of ``x``."""
        from sklearn.model_selection import StratifiedKFold

        y = np.asarray(y).astype(int)
        oof = np.zeros(len(y))
        inner = StratifiedKFold(self.config.inner_folds, shuffle=True, random_state=self.seed)
        for tr, va in inner.split(x, y):
            oof[va] = self._proba(self._fit_models(x.iloc[tr], y[tr]), x.iloc[va])
        self.threshold_ = f1_best_threshold(y, oof)
        self._models = self._fit_models(x, y)
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if not self._models:
            raise RuntimeError("FailureClassifier.predict_proba called before fit")
        assert_no_leakage(x.columns)
        return self._proba(self._models, x)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(x) >= self.threshold_).astype(int)
