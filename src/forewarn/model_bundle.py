"""The contract between training and the scorer: what a registered Forewarn model is and how it scores.

A registered version of ``settings.mlflow.model_name`` is a LightGBM Booster logged with the
``mlflow.lightgbm`` flavour (failure-within-horizon classifier). Its MLmodel ``metadata`` holds:

    forewarn_bundle: 1
    horizon:              e.g. "24h" or "30 cycles" (what P(failure) refers to)
    feature_set_version:  must equal the features service's version, or the scorer refuses it
    calibration:          {"raw": [...], "prob": [...]}: monotone map from the booster's probability to a
                          calibrated one (isotonic, interpolated), or absent
    rul_model_uri:        URI of a LightGBM RUL regressor logged beside it, or absent

Scoring is pure (numpy in, numpy out) so the batch path, the REST path and the benchmark share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BUNDLE_FORMAT = 1
# Stated, not inferred: MLflow's inference runs a subprocess per logged model (~4 s each).
_REQUIREMENTS = ["lightgbm", "numpy", "scikit-learn"]


@dataclass
class ModelBundle:
    booster: Any
    name: str
    version: str
    feature_names: list[str]
    horizon: str | None = None
    feature_set_version: str | None = None
    calibration: tuple[np.ndarray, np.ndarray] | None = None
    rul_booster: Any | None = None
    num_threads: int = 1
    _sensor_of: dict[str, str | None] = field(default_factory=dict)
    _column_maps: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.booster.predict(matrix, num_threads=self.num_threads)
        if self.calibration is None:
            return np.asarray(raw, dtype=np.float64)
        return np.interp(raw, self.calibration[0], self.calibration[1])

    def predict_rul(self, matrix: np.ndarray) -> np.ndarray | None:
        if self.rul_booster is None:
            return None
        return np.maximum(self.rul_booster.predict(matrix, num_threads=self.num_threads), 0.0)

    def top_contributors(self, matrix: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """The k features that pushed each row's risk up most (LightGBM pred_contrib, TreeSHAP).

        Costly (tens of times a plain predict), so callers ask only for rows worth explaining."""
        if len(matrix) == 0:
            return []
        contrib = self.booster.predict(matrix, pred_contrib=True, num_threads=self.num_threads)[:, :-1]
        order = np.argsort(-contrib, axis=1)[:, :k]
        result = []
        for row, picks in enumerate(order):
            result.append(
                [
                    {
                        "feature": self.feature_names[j],
                        "sensor": self.sensor_of(self.feature_names[j]),
                        "value": None if np.isnan(matrix[row, j]) else float(matrix[row, j]),
                        "contribution": float(contrib[row, j]),
                    }
                    for j in picks
                    if contrib[row, j] > 0
                ]
            )
        return result

    def sensor_of(self, feature: str) -> str | None:
        """Feature names are ``{sensor}__{window}__{stat}``; machine-level ones have no sensor."""
        if feature not in self._sensor_of:
            self._sensor_of[feature] = feature.split("__", 1)[0] if "__" in feature else None
        return self._sensor_of[feature]

    def align(self, names: list[str], matrix: np.ndarray) -> np.ndarray:
        """A matrix whose columns are ``names`` -> the model's column order; absent features are NaN.

        The column map is computed once per distinct name list, so aligning a block is one gather."""
        key = tuple(names)
        if names == self.feature_names:
            return matrix
        columns = self._column_maps.get(key)
        if columns is None:
            position = {name: i for i, name in enumerate(names)}
            columns = np.array([position.get(name, -1) for name in self.feature_names], dtype=np.int64)
            self._column_maps[key] = columns
        out = matrix[:, np.maximum(columns, 0)]
        out[:, columns < 0] = np.nan
        return out


def bundle_metadata(
    *,
    horizon: str | None,
    feature_set_version: str | None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    rul_model_uri: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"forewarn_bundle": BUNDLE_FORMAT, "horizon": horizon,
                            "feature_set_version": feature_set_version}
    if calibration is not None:
        meta["calibration"] = {"raw": [float(x) for x in calibration[0]],
                               "prob": [float(y) for y in calibration[1]]}
    if rul_model_uri:
        meta["rul_model_uri"] = rul_model_uri
    return meta


class NoChampion(LookupError):
    """No model version carries the alias yet."""


def champion_version(tracking_uri: str, name: str, alias: str) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise NoChampion(
            f"no model version of {name!r} has the alias {alias!r}; train and promote one "
            f"('forewarn train' then 'forewarn promote')"
        ) from exc


def load_bundle(tracking_uri: str, name: str, version: str, num_threads: int = 1) -> ModelBundle:
    import mlflow
    from mlflow.models import get_model_info

    mlflow.set_tracking_uri(tracking_uri)
    uri = f"models:/{name}/{version}"
    meta = get_model_info(uri).metadata or {}
    booster = mlflow.lightgbm.load_model(uri)
    calibration = None
    if meta.get("calibration"):
        calibration = (np.asarray(meta["calibration"]["raw"]), np.asarray(meta["calibration"]["prob"]))
    rul_booster = mlflow.lightgbm.load_model(meta["rul_model_uri"]) if meta.get("rul_model_uri") else None
    return ModelBundle(
        booster=booster,
        name=name,
        version=version,
        feature_names=list(booster.feature_name()),
        horizon=meta.get("horizon"),
        feature_set_version=meta.get("feature_set_version"),
        calibration=calibration,
        rul_booster=rul_booster,
        num_threads=num_threads,
    )


def log_bundle(
    booster: Any,
    *,
    registered_name: str,
    horizon: str | None,
    feature_set_version: str | None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    rul_booster: Any | None = None,
) -> str:
    """Log (inside the active MLflow run) and register a bundle; returns the registered version."""
    import mlflow

    rul_uri = None
    if rul_booster is not None:
        rul_uri = mlflow.lightgbm.log_model(rul_booster, name="rul_model", pip_requirements=_REQUIREMENTS).model_uri
    info = mlflow.lightgbm.log_model(
        booster,
        name="model",
        pip_requirements=_REQUIREMENTS,
        registered_model_name=registered_name,
        metadata=bundle_metadata(horizon=horizon, feature_set_version=feature_set_version,
                                 calibration=calibration, rul_model_uri=rul_uri),
    )
    return str(info.registered_model_version)
