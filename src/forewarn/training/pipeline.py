"""``forewarn train``: training set -> tuned, calibrated candidates -> gates' inputs -> registered bundle.

Steps (all seeded, so the same data and seed give the same metrics):

1. :func:`load_training_set` reads the Parquet set of ``forewarn etl build`` and keeps exactly the feature
   columns the features service emits: the union of ``feature_names(type)`` over the machine types in the
   data, NaN where a type lacks a sensor, in a fixed order, so the scorer's ``align`` finds every column.
2. :func:`holdout_split`: the last fold of :class:`GroupedTimeSplit` is the holdout (its machines, in the
   last time block); the development rows are the other machines before that block. Its definition is
   stored with the run (``holdout.json``) so ``forewarn promote`` can re-score the champion on it.
3. Each candidate is tuned by Optuna on grouped, time-aware folds of the development rows
   (:mod:`forewarn.training.tuning`); every trial is a nested MLflow run. The best trial's out-of-fold
   probabilities give the isotonic calibration map and the F1-best decision threshold; the candidate is
   then refit on all development rows and scored once on the holdout.
4. The winner is chosen on cross-validation (never on the holdout). The scorer serves LightGBM boosters,
   so the LightGBM candidate is what gets registered; when another candidate won, the card says by how much.
5. Fairness by machine type (gate), RUL regressor (when a RUL label exists), plots, model card, and
   :func:`forewarn.model_bundle.log_bundle` with the version tags ``forewarn promote`` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.errors import UserError
from forewarn.features import FEATURE_SET_VERSION, feature_names
from forewarn.training import tuning
from forewarn.training.candidates import LIGHTGBM, LSTM, RANDOM_FOREST, Candidate, FitData, build_candidates
from forewarn.training.fairness import FairnessReport, fairness_report
from forewarn.training.metrics import f1_best_threshold, nasa_score, rmse
from forewarn.training.splits import GroupedTimeSplit

log = logging.getLogger(__name__)

LABEL = "failure_within_horizon"
RUL_LABEL = "rul"
TTF = "time_to_failure_ms"
HOLDOUT_ARTIFACT = "holdout.json"
DVC_MD5_TAG = "dataset.dvc_md5"
ID_COLUMNS = ("machine_id", "machine_type", "ts")

# step(message, done, total): called after each unit of work (the CLI draws a bar from it).
Progress = Callable[[str, int, int], None]


def _no_progress(message: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    experiment: str = "forewarn-train"
    trials: int = 20
    seed: int = 0
    label: str = LABEL
    fairness_limit: float = 0.2
    register: bool = True
    quick: bool = False
    candidates: tuple[str, ...] = (LIGHTGBM, RANDOM_FOREST, LSTM)
    # The holdout is the last fold of GroupedTimeSplit(n): 1/n of the machines in the last 1/(n+1) of time.
    # None: the largest n of (4, 3, 2) whose holdout holds min_holdout_failures failures (few failures make
    # holdout figures noise), else 2.
    holdout_splits: int | None = None
    min_holdout_failures: int = 5
    cv_splits: int = 3
    # One thread by default: on a shared 2-core host, two OpenMP threads wait on each other and a LightGBM
    # fit runs ~4x slower than on one (measured); pass 2 on a quiet machine.
    num_threads: int = 1
    max_rows: int = 200_000  # larger sets are thinned evenly per machine (every k-th row)
    horizon: str | None = None  # default: the build's horizon from the manifest
    asset_config: str | None = None  # default: settings.asset_config (what the features service runs)
    # The training set's DVC hash (its `.dir` md5 in dvc.lock, see dvc_dataset_md5) when DVC built it,
    # logged as the run and version tag DVC_MD5_TAG: the model names a data version `dvc pull` can restore.
    dataset_dvc_md5: str | None = None

    @classmethod
    def quick_config(cls, data: Path, **overrides: Any) -> TrainConfig:
        """Few trials, LightGBM only, at most 60k rows: the demo's and the tests' path (about a minute)."""
        return replace(cls(data=data, trials=3, quick=True, candidates=(LIGHTGBM,), max_rows=60_000), **overrides)


# --- data ---------------------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # sorted by machine_id, ts; labelled rows only
    feature_names: list[str]
    machine_types: list[str]
    label: str
    data_hash: str  # the manifest's content_hash (the data version), else the rows' own hash
    rows_hash: str  # hash of the rows and columns used here, to check a re-read gives the same rows
    horizon: str | None
    source: Path
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def matrix(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.frame[self.feature_names].to_numpy(dtype=np.float64)[rows]

    def fit_data(self) -> FitData:
        f = self.frame
        return FitData(self.matrix(), f[self.label].to_numpy(dtype=np.int64), f["machine_id"].to_numpy(dtype=str),
                       f["ts"].to_numpy(dtype=np.int64))


def _locate(data: Path) -> tuple[Path, dict[str, Any]]:
    data = Path(data)
    for dataset, manifest in ((data / "dataset", data / "manifest.json"), (data, data / "manifest.json"),
                              (data, data.parent / "manifest.json")):
        if dataset.is_dir() and any(dataset.rglob("*.parquet")):
            return dataset, json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    raise UserError(f"no training set in {data}; build one with 'forewarn etl build --out {data}'")


def dvc_dataset_md5(data: Path, lock: Path) -> str:
    """The DVC hash (``<md5>.dir``) that ``lock`` (a dvc.lock) records for the training set in ``data``.

    Trusted only when the lock describes this very build: the stage that outputs the dataset also records
    the manifest written beside it, and that md5 must match the manifest now (the manifest holds the rows'
    content hash, so a rebuild outside DVC changes it and the lock's hash would name other data)."""
    import yaml

    dataset, _ = _locate(data)
    data = Path(data)
    manifests = [p for p in (data / "manifest.json", data.parent / "manifest.json") if p.is_file()]
    try:
        stages = yaml.safe_load(Path(lock).read_text(encoding="utf-8"))["stages"]
        root = Path(lock).resolve().parent
        for name, stage in stages.items():
            outs = {(root / out["path"]).resolve(): out for out in stage.get("outs", [])}
            if dataset.resolve() not in outs:
                continue
            recorded = [(m, outs[m.resolve()]) for m in manifests if m.resolve() in outs]
            # DVC names a file by the md5 of its bytes: a content address, not a security measure.
            now = hashlib.md5(recorded[0][0].read_bytes(), usedforsecurity=False).hexdigest() if recorded else None
            if not recorded or recorded[0][1].get("md5") != now:
                raise UserError(f"{lock} (stage {name!r}) does not describe the training set in {data}: it was "
                                f"rebuilt outside DVC; rebuild it with 'dvc repro {name}' or leave out --dvc-lock")
            return str(outs[dataset.resolve()]["md5"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"cannot read the DVC lock file {lock} ({exc!r}): run 'dvc repro' first or leave out "
                        "--dvc-lock") from exc
    raise UserError(f"no stage in {lock} outputs {dataset}: build the training set with 'dvc repro' or leave out "
                    "--dvc-lock")


def _frame_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "rows-sha256:" + digest.hexdigest()


def served_feature_names(config: Any, types: list[str]) -> list[str]:
    """Union of the service's feature names over ``types``, in config order, first occurrence wins."""
    names: list[str] = []
    seen: set[str] = set()
    for type_name in config.machine_types:
        if type_name in types:
            for name in feature_names(config.machine_types[type_name]):
                if name not in seen:
                    seen.add(name)
                    names.append(name)
    return names


def load_training_set(data: Path, *, label: str = LABEL, asset_config: str | None = None,
                      max_rows: int = 200_000, horizon: str | None = None) -> TrainingSet:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from forewarn.assets import load_asset_config
    from forewarn.settings import ForewarnSettings

    dataset_dir, manifest = _locate(data)
    config_name = asset_config or ForewarnSettings().asset_config
    config = load_asset_config(config_name)
    if manifest.get("feature_set_version") not in (None, FEATURE_SET_VERSION):
        raise UserError(f"{dataset_dir} was built with feature set {manifest['feature_set_version']!r}, the "
                        f"features service emits {FEATURE_SET_VERSION!r}: rebuild it with 'forewarn etl build'")
    hive = any(p.is_dir() and p.name.startswith("machine_type=") for p in dataset_dir.iterdir())
    partitioning = ds.partitioning(pa.schema([("machine_type", pa.string())]), flavor="hive") if hive else None
    dataset = ds.dataset(str(dataset_dir), format="parquet", partitioning=partitioning)
    # Files may differ in columns (a type's file without another type's features): read their union.
    schemas = [f.physical_schema for f in dataset.get_fragments()]
    if hive:
        schemas.append(pa.schema([("machine_type", pa.string())]))
    dataset = ds.dataset(str(dataset_dir), format="parquet", partitioning=partitioning,
                         schema=pa.unify_schemas(schemas, promote_options="permissive"))
    present = set(dataset.schema.names)
    missing = [c for c in (*ID_COLUMNS, label) if c not in present]
    if missing:
        raise UserError(f"{dataset_dir} lacks columns {missing}; choose the label with --horizon-label")
    everything = served_feature_names(config, list(config.machine_types))
    extra = [c for c in (RUL_LABEL, TTF, "arrival") if c in present and c != label]
    columns = [*ID_COLUMNS, label, *extra, *(c for c in everything if c in present)]
    frame = dataset.to_table(columns=columns).to_pandas()
    frame["machine_type"] = frame["machine_type"].astype(str)
    frame["machine_id"] = frame["machine_id"].astype(str)
    if pd.api.types.is_datetime64_any_dtype(frame["ts"]):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_localize(None).astype("datetime64[ms]")
    frame["ts"] = frame["ts"].astype(np.int64)
    types = sorted(frame["machine_type"].unique().tolist())
    unknown = [t for t in types if t not in config.machine_types]
    if unknown:
        raise UserError(f"machine types {unknown} are not in the asset config {config.name!r}; pass --config")
    by_type = manifest.get("columns", {}).get("features_by_machine_type", {})
    for t in types:
        if t in by_type and list(by_type[t]) != feature_names(config.machine_types[t]):
            raise UserError(f"the training set's features for {t!r} differ from what the features service "
                            f"emits with config {config.name!r}: rebuild it, or pass the config it was built with")
    names = served_feature_names(config, types)
    for name in names:
        if name not in frame.columns:
            frame[name] = np.nan
    labelled = frame[label].notna()
    notes = []
    if (~labelled).any():
        notes.append(f"{int((~labelled).sum())} rows without a label (censored) left out")
    frame = frame.loc[labelled, [*ID_COLUMNS, label, *extra, *names]]
    values = set(frame[label].astype(int).unique().tolist())
    if not values <= {0, 1}:
        raise UserError(f"label {label!r} must be 0/1, found {sorted(values)}")
    frame[label] = frame[label].astype(np.int64)
    order = ["machine_id", "ts", *(["arrival"] if "arrival" in frame.columns else [])]
    frame = frame.sort_values(order, kind="mergesort").reset_index(drop=True)
    if len(frame) > max_rows:
        stride = math.ceil(len(frame) / max_rows)
        position = frame.groupby("machine_id", sort=False).cumcount().to_numpy()
        frame = frame[position % stride == 0].reset_index(drop=True)
        notes.append(f"thinned to every {stride}th row per machine ({len(frame)} rows; --max-rows {max_rows})")
    rows_hash = _frame_hash(frame)
    build = manifest.get("build", {})
    return TrainingSet(
        frame=frame, feature_names=names, machine_types=types, label=label,
        data_hash=str(manifest.get("content_hash") or rows_hash), rows_hash=rows_hash,
        horizon=horizon or build.get("horizon") or manifest.get("label_definition", {}).get("horizon"),
        source=Path(data).resolve(), manifest=manifest, notes=notes,
    )


# --- splits -------------------------------------------------------------------------------------------


def _count_failures(ts: TrainingSet, rows: np.ndarray) -> int:
    f = ts.frame.iloc[rows]
    ttf = f[TTF].to_numpy(dtype=np.float64) if TTF in f.columns else None
    y = f[ts.label].to_numpy()
    failure_ts = tuning.failure_times(f["machine_id"].to_numpy(dtype=str), f["ts"].to_numpy(), y, ttf)
    positive = (y == 1) & np.isfinite(failure_ts)
    return len(set(zip(f["machine_id"].to_numpy(dtype=str)[positive].tolist(), failure_ts[positive].tolist(),
                       strict=True)))


def holdout_split(ts: TrainingSet, n_splits: int | None, seed: int, min_failures: int = 5
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(development rows, holdout rows, holdout definition) from the last grouped, time-aware fold."""
    groups = ts.frame["machine_id"].to_numpy(dtype=str)
    times = ts.frame["ts"].to_numpy(dtype=np.int64)
    machines = len(np.unique(groups))
    choices = [n_splits] if n_splits else [n for n in (4, 3, 2) if n <= machines]
    if not choices or machines < choices[0]:
        raise UserError(f"{machines} machines are too few for a machine-grouped holdout: need at least "
                        f"{choices[0] if choices else 2}")
    for n in choices:
        dev, hold = list(GroupedTimeSplit(n, seed).split(groups, times))[-1]
        failures = _count_failures(ts, hold)
        if failures >= min_failures:
            break
    start = float(np.quantile(times, np.linspace(0.0, 1.0, n + 2))[n])
    ids = sorted(np.unique(groups[hold]).tolist())
    definition = {
        "splitter": {"class": "GroupedTimeSplit", "n_splits": n, "seed": seed, "fold": n - 1},
        "rule": "rows of machine_ids with ts >= ts_from (development: other machines, ts < ts_from)",
        "machine_ids": ids, "ts_from": start, "rows": int(len(hold)), "failures": failures,
        "positives": int(ts.frame[ts.label].to_numpy()[hold].sum()),
    }
    if failures < min_failures:
        ts.notes.append(f"the holdout holds only {failures} failures (wanted {min_failures}): its figures are "
                        "anecdotal; more history or machines would make them evidence")
    return dev, hold, definition


def holdout_rows(frame: pd.DataFrame, definition: dict[str, Any]) -> np.ndarray:
    """The holdout rows of ``frame`` per a stored definition (used by ``forewarn promote``)."""
    inside = frame["machine_id"].isin(definition["machine_ids"]) & (frame["ts"] >= definition["ts_from"])
    return np.flatnonzero(inside.to_numpy())


def inner_folds(dev: FitData, n_splits: int, seed: int, notes: list[str] | None = None) -> tuning.Folds:
    """Grouped, time-aware folds of the development rows; grouped only when those starve of failures.

    Time-aware folds train fold k only on rows before its validation block, so with few failures a fold
    may train or validate on none, and the search would chase noise. Then the folds hold out whole
    machines over all of the development period (still no machine on both sides), and a note says so;
    the holdout itself stays grouped and time-aware either way."""
    machines = len(np.unique(dev.groups))
    if machines < n_splits:
        raise UserError(f"{machines} development machines are too few for {n_splits} grouped folds")
    splitter = GroupedTimeSplit(n_splits, seed)

    def usable(folds: tuning.Folds) -> bool:
        return len(folds) >= 2 and all(dev.y[tr].any() and dev.y[va].any() for tr, va in folds)

    folds = [(tr, va) for tr, va in splitter.split(dev.groups, dev.times) if len(tr) and len(va)]
    if not usable(folds):
        folds = list(splitter.split(dev.groups))
        if notes is not None:
            notes.append("tuning folds are grouped by machine but not time-ordered: the time-aware folds left a "
                         "fold without failures to train or validate on")
    if not usable(folds):
        raise UserError("the validation folds hold no failures (or only failures): more machines, more failures "
                        "or a longer horizon are needed to tune and calibrate a model")
    return folds


# --- one candidate ------------------------------------------------------------------------------------


@dataclass
class CandidateResult:
    name: str
    servable: bool
    tune: tuning.TuneResult
    calibration: tuning.Calibration | None
    threshold: float
    model: Any
    holdout_raw: np.ndarray
    holdout_prob: np.ndarray
    holdout: dict[str, float]
    oof_calibrated: dict[str, float]
    lead: tuning.LeadTimes
    importance: np.ndarray

    @property
    def cv_pr_auc(self) -> float:
        return self.tune.best_score


def finish_candidate(candidate: Candidate, result: tuning.TuneResult, dev: FitData, hold: FitData,
                     hold_failure_ts: np.ndarray, seed: int) -> CandidateResult:
    covered = result.cv.covered
    raw_oof, y_oof = result.cv.oof[covered], dev.y[covered]
    calibration = tuning.fit_calibration(raw_oof, y_oof)
    cal_oof = tuning.apply_calibration(calibration, raw_oof)
    threshold = f1_best_threshold(y_oof, cal_oof)
    model = candidate.fit(dev, result.best_params, seed)
    raw = candidate.predict(model, hold)
    prob = tuning.apply_calibration(calibration, raw)
    lead = tuning.alert_lead_times(hold.groups, hold.times, hold.y, hold_failure_ts, prob, threshold)
    return CandidateResult(
        name=candidate.name, servable=candidate.servable, tune=result, calibration=calibration,
        threshold=threshold, model=model, holdout_raw=raw, holdout_prob=prob,
        holdout={**tuning.classification_scores(hold.y, prob, threshold),
                 "calibration_error_raw": tuning.expected_calibration_error(hold.y, raw), **lead.summary()},
        oof_calibrated=tuning.classification_scores(y_oof, cal_oof, threshold),
        lead=lead, importance=candidate.importance(model),
    )


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    run_id: str
    experiment: str
    version: str | None
    served: str
    cv_winner: str
    metrics: dict[str, float]
    fairness: FairnessReport
    candidates: dict[str, dict[str, Any]]
    notes: list[str]
    card: str
    holdout: dict[str, Any]


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


def _trial_sink() -> tuning.TrialSink:
    import mlflow

    def sink(name: str, number: int, params: dict[str, Any], metrics: dict[str, float], state: str) -> None:
        with mlflow.start_run(run_name=f"{name}-trial-{number:03d}", nested=True):
            mlflow.set_tags({"candidate": name, "trial": str(number), "state": state, "kind": "trial"})
            mlflow.log_params(params)
            mlflow.log_metrics(_finite(metrics))

    return sink


def _fit_rul(ts: TrainingSet, dev: np.ndarray, hold: np.ndarray, threads: int, seed: int, quick: bool
             ) -> tuple[Any, dict[str, float]] | None:
    if RUL_LABEL not in ts.frame.columns or ts.label == RUL_LABEL:
        return None
    target = ts.frame[RUL_LABEL].to_numpy(dtype=np.float64)
    dev = dev[np.isfinite(target[dev])]
    hold = hold[np.isfinite(target[hold])]
    if len(dev) < 50:
        return None
    from forewarn.training.candidates import LightGBMCandidate

    params = {"num_boost_round": 60 if quick else 400, "learning_rate": 0.05, "num_leaves": 31,
              "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8, "lambda_l2": 1.0}
    regressor = LightGBMCandidate(ts.feature_names, threads)
    x = ts.matrix()
    data = FitData(x[dev], target[dev], ts.frame["machine_id"].to_numpy(dtype=str)[dev],
                   ts.frame["ts"].to_numpy()[dev])
    booster = regressor.fit(data, params, seed, objective="regression")
    metrics: dict[str, float] = {"rul_rows": float(len(hold))}
    if len(hold):
        pred = np.maximum(booster.predict(x[hold], num_threads=threads), 0.0)
        metrics.update({"rul_rmse": rmse(target[hold], pred), "rul_nasa_score": nasa_score(target[hold], pred),
                        "rul_nasa_score_per_100": nasa_score(target[hold], pred) / len(hold) * 100.0})
    return booster, metrics


def require_mlflow(tracking_uri: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds with what to do, rather than after the MLflow client's minutes of retries."""
    import httpx

    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        ok = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        ok = False
    if not ok:
        raise UserError(f"MLflow at {tracking_uri} is not reachable: start it with 'forewarn stack up' or set "
                        "FOREWARN_MLFLOW__TRACKING_URI")


def run_training(config: TrainConfig, *, tracking_uri: str, model_name: str,
                 step: Progress = _no_progress) -> TrainResult:
    import mlflow

    from forewarn.training import model_card

    started = time.perf_counter()
    require_mlflow(tracking_uri)
    ts = load_training_set(config.data, label=config.label, asset_config=config.asset_config,
                           max_rows=config.max_rows, horizon=config.horizon)
    data = ts.fit_data()
    dev_rows, hold_rows, definition = holdout_split(ts, config.holdout_splits, config.seed,
                                                    config.min_holdout_failures)
    notes = list(ts.notes)
    dev, hold = data.take(dev_rows), data.take(hold_rows)
    folds = inner_folds(dev, config.cv_splits, config.seed, notes)
    ttf = ts.frame[TTF].to_numpy(dtype=np.float64)[hold_rows] if TTF in ts.frame.columns else None
    hold_failure_ts = tuning.failure_times(hold.groups, hold.times, hold.y, ttf)
    if ttf is None:
        notes.append(f"no {TTF} column: lead times place each failure at the last positive row before it")
    candidates = build_candidates(ts.feature_names, config.num_threads, list(config.candidates), notes)
    total = config.trials * len(candidates) + len(candidates) + 2
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        step(message, done, total)

    definition.update({"data_dir": str(ts.source), "data_hash": ts.data_hash, "rows_hash": ts.rows_hash,
                       "label": ts.label, "max_rows": config.max_rows, "asset_config": config.asset_config})
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name=f"train-seed{config.seed}-{ts.data_hash.split(':')[-1][:8]}") as parent:
        mlflow.set_tags({"kind": "train", "data_hash": ts.data_hash, "rows_hash": ts.rows_hash,
                         "feature_set_version": FEATURE_SET_VERSION, "label": ts.label,
                         "horizon": str(ts.horizon), "quick": str(config.quick),
                         **({DVC_MD5_TAG: config.dataset_dvc_md5} if config.dataset_dvc_md5 else {})})
        mlflow.log_params({"seed": config.seed, "trials": config.trials, "candidates": ",".join(config.candidates),
                           "holdout_splits": definition["splitter"]["n_splits"], "cv_splits": config.cv_splits,
                           "num_threads": config.num_threads, "max_rows": config.max_rows,
                           "fairness_limit": config.fairness_limit, "features": len(ts.feature_names),
                           "rows": len(ts.frame), "dev_rows": len(dev_rows), "holdout_rows": len(hold_rows),
                           "machines": ts.frame["machine_id"].nunique(), "machine_types": ",".join(ts.machine_types),
                           "data_dir": str(ts.source)})
        mlflow.log_dict(definition, HOLDOUT_ARTIFACT)
        results: dict[str, CandidateResult] = {}
        for candidate in candidates:
            tuned = tuning.tune(candidate, dev, folds, trials=config.trials, seed=config.seed, quick=config.quick,
                                sink=_trial_sink(), step=tick)
            result = finish_candidate(candidate, tuned, dev, hold, hold_failure_ts, config.seed)
            results[candidate.name] = result
            _log_best(candidate, result, ts.feature_names, hold)
            tick(f"{candidate.name}: refit and holdout")
        served = results[LIGHTGBM]
        cv_winner = max(results.values(), key=lambda r: (r.cv_pr_auc, r.name == LIGHTGBM)).name
        if cv_winner != LIGHTGBM:
            notes.append(
                f"{cv_winner} scored higher in cross-validation (PR-AUC {results[cv_winner].cv_pr_auc:.4f} vs "
                f"{served.cv_pr_auc:.4f}); the scorer serves LightGBM boosters, so LightGBM is registered")
        hard = (served.holdout_prob >= served.threshold).astype(int)
        types = ts.frame["machine_type"].to_numpy(dtype=str)[hold_rows]
        fairness = fairness_report(hold.y, hard, types, config.fairness_limit)
        per_type = {t: tuning.classification_scores(hold.y[types == t], served.holdout_prob[types == t],
                                                    served.threshold) for t in sorted(set(types.tolist()))}
        rul = _fit_rul(ts, dev_rows, hold_rows, config.num_threads, config.seed, config.quick)
        if rul is None:
            notes.append("no RUL label with enough rows: no RUL model in the bundle")
        tick("RUL regressor")
        metrics = {f"holdout_{k}": v for k, v in served.holdout.items()}
        metrics.update({"cv_pr_auc": served.cv_pr_auc, "decision_threshold": served.threshold,
                        "calibration_error": served.holdout["calibration_error"],
                        "fairness_gap": fairness.largest_gap, "fairness_gate_passed": float(fairness.passed),
                        **(rul[1] if rul else {})})
        for name, r in results.items():
            metrics.update({f"{name}.cv_pr_auc": r.cv_pr_auc, f"{name}.holdout_f1": r.holdout["f1"],
                            f"{name}.holdout_pr_auc": r.holdout["pr_auc"], f"{name}.holdout_brier": r.holdout["brier"]})
        for t, scores in per_type.items():
            metrics.update({f"type.{t}.recall": scores["recall"], f"type.{t}.f1": scores["f1"],
                            f"type.{t}.false_positive_rate": fairness.by_type[t]["false_positive_rate"]})
        mlflow.log_metrics(_finite(metrics))
        mlflow.set_tags({"fairness_gate": "pass" if fairness.passed else "fail", "cv_winner": cv_winner,
                         "served_candidate": LIGHTGBM, "train_wall_s": f"{time.perf_counter() - started:.1f}"})
        mlflow.log_dict(fairness.as_dict(), "fairness.json")
        summary = {name: {"cv_pr_auc": r.cv_pr_auc, "threshold": r.threshold, "best_params": r.tune.best_params,
                          "trials_complete": r.tune.trials_complete, "trials_pruned": r.tune.trials_pruned,
                          "holdout": r.holdout, "oof_calibrated": r.oof_calibrated}
                   for name, r in results.items()}
        mlflow.log_dict(summary, "candidates.json")
        _log_reference(ts, served, config)
        version = None
        if config.register:
            version = _register(served, rul[0] if rul else None, model_name, tracking_uri, ts, metrics, fairness,
                                config, cv_winner, parent.info.run_id)
        tick("registered" if version else "done (not registered)")
        card = model_card.render(model_card.CardInputs(
            model_name=model_name, version=version, run_id=parent.info.run_id, data=ts, definition=definition,
            config=asdict(config), results=summary, served=LIGHTGBM, cv_winner=cv_winner, metrics=metrics,
            per_type=per_type, fairness=fairness,
            importance=model_card.top_importance(ts.feature_names, served.importance),
            notes=notes, feature_set_version=FEATURE_SET_VERSION))
        mlflow.log_text(card, "model_card.md")
        if version is not None:
            from mlflow import MlflowClient

            description = (f"Failure within {ts.horizon}: holdout F1 {metrics['holdout_f1']:.4f}, PR-AUC "
                           f"{metrics['holdout_pr_auc']:.4f}, Brier {metrics['holdout_brier']:.4f}, fairness gap "
                           f"{fairness.largest_gap:.4f}; data {ts.data_hash}. Model card: model_card.md of run "
                           f"{parent.info.run_id}.")
            MlflowClient(tracking_uri).update_model_version(model_name, version, description=description)
    from forewarn.audit import actions as audit  # the run and its registration go on the audit trail

    audit.training_run(audit.default_trail(), audit.default_actor(), run_id=parent.info.run_id,
                       experiment=config.experiment, model=model_name, version=version, data_hash=ts.data_hash,
                       rows_hash=ts.rows_hash, data_dir=ts.source, metrics=metrics,
                       extra={DVC_MD5_TAG: config.dataset_dvc_md5} if config.dataset_dvc_md5 else None)
    return TrainResult(run_id=parent.info.run_id, experiment=experiment.experiment_id, version=version,
                       served=LIGHTGBM, cv_winner=cv_winner, metrics=metrics, fairness=fairness,
                       candidates=summary, notes=notes, card=card, holdout=definition)


def _log_best(candidate: Candidate, result: CandidateResult, names: list[str], hold: FitData) -> None:
    import mlflow

    from forewarn.training import model_card

    with mlflow.start_run(run_name=f"{candidate.name}-best", nested=True):
        mlflow.set_tags({"candidate": candidate.name, "kind": "best", "servable": str(candidate.servable),
                         "best_trial": str(result.tune.best_number)})
        mlflow.log_params(result.tune.best_params)
        mlflow.log_metrics(_finite({"cv_pr_auc": result.cv_pr_auc, "decision_threshold": result.threshold,
                                    **{f"holdout_{k}": v for k, v in result.holdout.items()},
                                    **{f"oof_{k}": v for k, v in result.oof_calibrated.items()}}))
        for name, figure in model_card.figures(hold.y, result.holdout_raw, result.holdout_prob,
                                               names, result.importance).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        if result.calibration is not None:
            mlflow.log_dict({"raw": result.calibration[0].tolist(), "prob": result.calibration[1].tolist()},
                            "calibration.json")
        candidate.log_model(result.model)


def _log_reference(ts: TrainingSet, served: CandidateResult, config: TrainConfig) -> None:
    """The monitor's reference (forewarn.monitoring.reference), stored with the run the version points at."""
    from forewarn.assets import load_asset_config
    from forewarn.monitoring.reference import build_reference, log_reference, monitored_features
    from forewarn.settings import ForewarnSettings

    assets = load_asset_config(config.asset_config or ForewarnSettings().asset_config)
    holdout = {k: v for k, v in served.holdout.items() if isinstance(v, int | float)}
    # Every machine over the whole training period, not the development rows: those leave the holdout's
    # machines out, and a live window holds the whole fleet, so a reference of part of it differs from every
    # clean window by the machines missing (measured: pump rotational_speed 10m mean, 1818 rpm over the
    # development rows against 1797 over the fleet, a clean live week 1.3x above that reference's threshold
    # in 80% of its hours; over the fleet, no clean hour above 0.9x of any threshold). The reference selects
    # nothing, so the holdout rows leak nothing into the model. Healthy rows only (no failure within the
    # horizon): the monitor leaves machines the model calls at risk out of its windows, so both sides
    # describe the plant at work, not its failures.
    frame = ts.frame
    reference = build_reference(
        frame[frame[ts.label] == 0], holdout_prob=served.holdout_prob,
        holdout={**holdout, "threshold": served.threshold},
        features_by_type={t: monitored_features(assets.machine_types[t]) for t in ts.machine_types},
        horizon=ts.horizon, data_hash=ts.data_hash, seed=config.seed)
    log_reference(reference)


def version_tags(metrics: dict[str, float], fairness: FairnessReport, ts: TrainingSet, config: TrainConfig,
                 cv_winner: str, run_id: str) -> dict[str, str]:
    """What ``forewarn promote`` reads: the gates' inputs and where the holdout is defined."""
    return {
        "holdout_f1": repr(metrics["holdout_f1"]), "holdout_pr_auc": repr(metrics["holdout_pr_auc"]),
        "holdout_brier": repr(metrics["holdout_brier"]), "holdout_precision": repr(metrics["holdout_precision"]),
        "holdout_recall": repr(metrics["holdout_recall"]), "calibration_error": repr(metrics["calibration_error"]),
        "fairness_gap": repr(fairness.largest_gap), "fairness_gate": "pass" if fairness.passed else "fail",
        "fairness_limit": repr(config.fairness_limit), "decision_threshold": repr(metrics["decision_threshold"]),
        "data_hash": ts.data_hash, "rows_hash": ts.rows_hash, "feature_set_version": FEATURE_SET_VERSION,
        "horizon": str(ts.horizon), "label": ts.label, "seed": str(config.seed), "train_run_id": run_id,
        "holdout_artifact": HOLDOUT_ARTIFACT, "cv_winner": cv_winner, "served_candidate": LIGHTGBM,
        "machine_types": ",".join(ts.machine_types),
        **({DVC_MD5_TAG: config.dataset_dvc_md5} if config.dataset_dvc_md5 else {}),
    }


def _register(served: CandidateResult, rul_booster: Any, model_name: str, tracking_uri: str, ts: TrainingSet,
              metrics: dict[str, float], fairness: FairnessReport, config: TrainConfig, cv_winner: str,
              run_id: str) -> str:
    from mlflow import MlflowClient

    from forewarn.model_bundle import log_bundle

    version = log_bundle(served.model, registered_name=model_name, horizon=ts.horizon,
                         feature_set_version=FEATURE_SET_VERSION, calibration=served.calibration,
                         rul_booster=rul_booster)
    client = MlflowClient(tracking_uri)
    for key, value in version_tags(metrics, fairness, ts, config, cv_winner, run_id).items():
        client.set_model_version_tag(model_name, version, key, value)
    return version
