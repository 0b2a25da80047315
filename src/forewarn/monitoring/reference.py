"""The reference a model is monitored against, built at training time and stored with its run.

A reference holds, per machine type, a sample of the monitored features the model was trained on and
the drift threshold each earned from its own clean history; the distribution of the model's calibrated
probabilities on its holdout; and the holdout figures (precision, recall, calibration error, lead time)
that live figures are compared with. Older champions were trained without one: :func:`load_reference`
answers ``None`` for them and the monitor reports "no reference" instead of judging.

Monitored features: per measured sensor, its 10-minute mean (the level), its 10-minute standard
deviation (the spread) and its 1-hour difference from the machine's own baseline (a shift relative to
how this machine ran after its last service). Together they show an offset, a gain change and a new
operating regime, while staying few (a window costs ~1.5 ms of Evidently per feature).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.monitoring.drift import DEFAULT_THRESHOLD, null_threshold

REFERENCE_FORMAT = 1
ARTIFACT_DIR = "reference"
MONITORED_STATS = ("10m__mean", "10m__std", "1h__delta_baseline")
SAMPLE_ROWS = 5_000  # per machine type: the Wasserstein distance of 5k vs a few hundred rows is stable
BLOCK_MS = 3_600_000  # event time per clean block when thresholds are calibrated: the monitor's window span
MIN_BLOCK_ROWS = 20


def monitored_features(machine_type: Any) -> list[str]:
    """The features drift is judged on for one machine type of the asset config (measured sensors only)."""
    return [f"{name}__{stat}" for name in machine_type.sensor_names
            if machine_type.sensors[name].role != "setting" for stat in MONITORED_STATS]


@dataclass
class Reference:
    model_version: str | None
    features: dict[str, pd.DataFrame]  # machine type -> sample of its monitored features
    thresholds: dict[str, dict[str, float]]  # machine type -> feature -> drift threshold
    scores: np.ndarray  # calibrated probabilities on the holdout
    score_threshold: float
    holdout: dict[str, float]  # precision, recall, f1, calibration_error, lead_median_h, threshold, ...
    horizon: str | None
    horizon_ms: int | None
    block_ms: int = BLOCK_MS  # event time a window should span to be judged like the calibration blocks
    data_hash: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def machine_types(self) -> list[str]:
        return sorted(self.features)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": REFERENCE_FORMAT, "model_version": self.model_version, "thresholds": self.thresholds,
                "score_threshold": self.score_threshold, "holdout": self.holdout, "horizon": self.horizon,
                "horizon_ms": self.horizon_ms, "block_ms": self.block_ms, "data_hash": self.data_hash,
                "notes": self.notes,
                "machine_types": self.machine_types}
        (folder / "reference.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
        for type_name, frame in self.features.items():
            frame.reset_index(drop=True).to_parquet(folder / f"features-{type_name}.parquet", index=False)
        pd.DataFrame({"p_failure": self.scores}).to_parquet(folder / "scores.parquet", index=False)

    @classmethod
    def load(cls, folder: Path, model_version: str | None = None) -> Reference:
        meta = json.loads((folder / "reference.json").read_text(encoding="utf-8"))
        if meta.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"reference format {meta.get('format')!r} in {folder} is not {REFERENCE_FORMAT}")
        features = {t: pd.read_parquet(folder / f"features-{t}.parquet") for t in meta["machine_types"]}
        scores = pd.read_parquet(folder / "scores.parquet")["p_failure"].to_numpy(np.float64)
        return cls(model_version=model_version or meta.get("model_version"), features=features,
                   thresholds={t: {k: float(v) for k, v in th.items()} for t, th in meta["thresholds"].items()},
                   scores=scores, score_threshold=float(meta["score_threshold"]),
                   holdout={k: float(v) for k, v in meta["holdout"].items()}, horizon=meta.get("horizon"),
                   horizon_ms=meta.get("horizon_ms"), block_ms=int(meta.get("block_ms", BLOCK_MS)),
                   data_hash=meta.get("data_hash"), notes=meta.get("notes", []))


def _time_blocks(frame: pd.DataFrame, column: str, block_ms: int) -> list[np.ndarray]:
    """The feature's values in consecutive spans of ``block_ms`` of event time (the clean history a live
    window of that span is compared with); spans with too few rows are left out."""
    values = frame[column].to_numpy(np.float64)
    span = frame["ts"].to_numpy(np.int64) // block_ms
    order = np.argsort(span, kind="stable")
    edges = np.flatnonzero(np.diff(span[order])) + 1
    return [b for b in np.split(values[order], edges) if b.size >= MIN_BLOCK_ROWS]


def build_reference(frame: pd.DataFrame, *, features_by_type: Mapping[str, list[str]], holdout_prob: np.ndarray,
                    holdout: Mapping[str, float], horizon: str | None, data_hash: str | None = None,
                    sample_rows: int = SAMPLE_ROWS, block_ms: int = BLOCK_MS, seed: int = 0) -> Reference:
    """``frame``: the rows the model was fitted on (with machine_type, ts and the feature columns)."""
    from forewarn.assets import parse_duration_ms

    rng = np.random.default_rng(seed)
    features: dict[str, pd.DataFrame] = {}
    thresholds: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    for type_name, names in features_by_type.items():
        rows = frame[frame["machine_type"] == type_name]
        names = [n for n in names if n in rows.columns]
        if rows.empty or not names:
            continue
        take = np.sort(rng.choice(len(rows), size=min(sample_rows, len(rows)), replace=False))
        sample = rows.iloc[take][["ts", *names]].reset_index(drop=True)
        features[type_name] = sample[names]
        thresholds[type_name] = {
            n: null_threshold(sample[n].to_numpy(np.float64), _time_blocks(rows, n, block_ms)) for n in names}
    scores = np.asarray(holdout_prob, dtype=np.float64)
    # The holdout's probabilities in the holdout's row order (machine by machine): blocks of a few machines,
    # the way a window sees part of the fleet.
    block_rows = max(MIN_BLOCK_ROWS, len(scores) // 20)
    score_blocks = [scores[k * block_rows:(k + 1) * block_rows] for k in range(len(scores) // block_rows)]
    try:
        horizon_ms = parse_duration_ms(horizon) if horizon else None
    except ValueError:
        horizon_ms = None  # e.g. "30 cycles": no wall-clock horizon, so no label join in event time
    return Reference(model_version=None, features=features, thresholds=thresholds, scores=scores, block_ms=block_ms,
                     score_threshold=null_threshold(scores, score_blocks) if score_blocks else DEFAULT_THRESHOLD,
                     holdout={k: float(v) for k, v in holdout.items()}, horizon=horizon, horizon_ms=horizon_ms,
                     data_hash=data_hash, notes=notes)


def log_reference(reference: Reference) -> None:
    """Inside the active MLflow (training) run: the reference under ``reference/``."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        reference.save(Path(tmp))
        mlflow.log_artifacts(tmp, ARTIFACT_DIR)


def load_reference(tracking_uri: str, name: str, version: str) -> Reference | None:
    """The reference stored with a registered version's training run; None when it has none (trained before
    references existed, or by hand)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    tags = dict(MlflowClient(tracking_uri).get_model_version(name, version).tags)
    run_id = tags.get("train_run_id")
    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT_DIR, dst_path=tmp)
        except Exception:  # noqa: BLE001 - MLflow raises several types for "no such artifact"
            return None
        folder = Path(local)
        if not (folder / "reference.json").is_file():
            return None
        return Reference.load(folder, model_version=version)
