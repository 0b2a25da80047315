"""Benchmarks on the real datasets: grouped CV on training data, then one scored run on the test protocol.

Each function returns a JSON-ready dict with the figures, the CV figures that chose the configuration,
wall time and peak memory. Progress goes through an optional callback so the CLI can draw a bar while
the library stays free of terminal code.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.training.classify import ClassifierConfig, FailureClassifier, build_ai4i_features
from forewarn.training.datasets import AI4I_TARGET, CMAPSS_SENSORS, load_ai4i, load_cmapss
from forewarn.training.metrics import binary_scores, nasa_score, pr_auc, rmse
from forewarn.training.rul import RulEnsemble, RulModelConfig
from forewarn.training.rul_features import DegradationFeaturizer, FeatureSpec, piecewise_rul
from forewarn.training.splits import GroupedTimeSplit, sample_cut_rows

# step(message, done, total): called after each unit of work.
Progress = Callable[[str, int, int], None]


def _no_progress(message: str, done: int, total: int) -> None:
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


@dataclass(frozen=True)
class CmapssEvalConfig:
    features: FeatureSpec = field(default_factory=FeatureSpec)
    model: RulModelConfig = field(default_factory=RulModelConfig)
    cv_folds: int = 5
    cv_cuts_per_engine: int = 5
    # Shortest history a validation engine is cut at; the shortest FD001 test run has 31 cycles.
    cv_min_history: int = 30
    seed: int = 0

    @classmethod
    def fast(cls) -> CmapssEvalConfig:
        """A few times cheaper, for smoke tests: one seed, fewer trees, three folds."""
        model = RulModelConfig(
            lgbm_seeds=(0,), lgbm_params={**RulModelConfig().lgbm_params, "n_estimators": 300, "learning_rate": 0.06}
        )
        return cls(model=model, cv_folds=3, cv_cuts_per_engine=3)


def _fit_predict_rul(train: pd.DataFrame, target: np.ndarray, score: pd.DataFrame, cfg: CmapssEvalConfig) -> np.ndarray:
    """Fit featurizer and ensemble on ``train`` (sorted runs), predict every row of ``score``."""
    featurizer = DegradationFeaturizer(CMAPSS_SENSORS, cfg.features).fit(train, target)
    model = RulEnsemble(cfg.model, cfg.seed).fit(featurizer.transform(train), target)
    return model.predict(featurizer.transform(score))


def cross_validate_rul(train: pd.DataFrame, cfg: CmapssEvalConfig, step: Progress = _no_progress) -> dict[str, Any]:
    """Grouped K-fold over engines; validation engines are scored at random cut points (test protocol)."""
    target = piecewise_rul(train, cfg.features.rul_cap)
    groups = train["unit"].to_numpy()
    cut_rows = sample_cut_rows(groups, cfg.cv_cuts_per_engine, cfg.cv_min_history, np.random.default_rng(cfg.seed))
    is_cut = np.zeros(len(train), dtype=bool)
    is_cut[cut_rows] = True
    fold_rmse: list[float] = []
    truths, preds = [], []
    splitter = GroupedTimeSplit(cfg.cv_folds, cfg.seed)
    for k, (tr, va) in enumerate(splitter.split(groups)):
        scored = va[is_cut[va]]
        fold_train = train.iloc[tr].reset_index(drop=True)
        # Features are causal, so scoring the cut rows of the full runs equals scoring truncated runs.
        pred_all = _fit_predict_rul(fold_train, target[tr], train.iloc[va].reset_index(drop=True), cfg)
        pred = pred_all[is_cut[va]]
        fold_rmse.append(rmse(target[scored], pred))
        truths.append(target[scored])
        preds.append(pred)
        step(f"CV fold {k + 1}/{cfg.cv_folds}", k + 1, cfg.cv_folds)
    y, p = np.concatenate(truths), np.concatenate(preds)
    return {
        "cv_rmse": rmse(y, p),
        "cv_rmse_fold_std": float(np.std(fold_rmse)),
        "cv_rmse_folds": fold_rmse,
        # Per 100 scored cuts, so it reads on the same scale as a 100-engine test set.
        "cv_nasa_score_per_100": nasa_score(y, p) / len(y) * 100.0,
        "cv_folds": cfg.cv_folds,
        "cv_n_scored_cuts": int(len(y)),
    }


def evaluate_cmapss(
    data_dir: Path, subset: str, cfg: CmapssEvalConfig | None = None, step: Progress = _no_progress
) -> dict[str, Any]:
    """CV on the training engines, then fit on all of them and score the last cycle of each test engine."""
    cfg = cfg or CmapssEvalConfig()
    started = time.perf_counter()
    data = load_cmapss(data_dir, subset)
    total = cfg.cv_folds + 1 if cfg.cv_folds > 1 else 1

    def cv_step(message: str, done: int, _total: int) -> None:
        step(message, done, total)

    cv = cross_validate_rul(data.train, cfg, cv_step) if cfg.cv_folds > 1 else {}
    target = piecewise_rul(data.train, cfg.features.rul_cap)
    pred_all = _fit_predict_rul(data.train, target, data.test, cfg)
    last = data.test.groupby("unit", sort=True).tail(1).index.to_numpy()
    units = data.test.loc[last, "unit"].to_numpy()
    pred = pred_all[last]
    truth = data.test_rul.loc[units].to_numpy(dtype=float)
    capped = np.minimum(truth, cfg.features.rul_cap)
    step("final model", total, total)
    return {
        "subset": data.name,
        "rmse": rmse(capped, pred),
        "nasa_score": nasa_score(capped, pred),
        "rmse_uncapped": rmse(truth, pred),
        "nasa_score_uncapped": nasa_score(truth, pred),
        "n_test_units": int(len(units)),
        "rul_cap": cfg.features.rul_cap,
        **cv,
        "seed": cfg.seed,
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


@dataclass(frozen=True)
class Ai4iEvalConfig:
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    seed: int = 0


def _scores(y: np.ndarray, proba: np.ndarray, hard: np.ndarray) -> dict[str, Any]:
    return {**binary_scores(y, hard), "pr_auc": pr_auc(y, proba)}


def evaluate_ai4i(data_dir: Path, cfg: Ai4iEvalConfig | None = None, step: Progress = _no_progress) -> dict[str, Any]:
    """Stratified outer K-fold; each fold's model picks its threshold from inner folds of its own data."""
    from sklearn.model_selection import StratifiedKFold

    cfg = cfg or Ai4iEvalConfig()
    started = time.perf_counter()
    frame = load_ai4i(data_dir)
    x = build_ai4i_features(frame)
    y = frame[AI4I_TARGET].to_numpy(dtype=int)
    proba = np.zeros(len(y))
    hard = np.zeros(len(y), dtype=int)
    thresholds, fold_f1 = [], []
    outer = StratifiedKFold(cfg.model.outer_folds, shuffle=True, random_state=cfg.seed)
    for k, (tr, va) in enumerate(outer.split(x, y)):
        model = FailureClassifier(cfg.model, cfg.seed).fit(x.iloc[tr], y[tr])
        proba[va] = model.predict_proba(x.iloc[va])
        hard[va] = (proba[va] >= model.threshold_).astype(int)
        thresholds.append(model.threshold_)
        fold_f1.append(binary_scores(y[va], hard[va])["f1"])
        step(f"outer fold {k + 1}/{cfg.model.outer_folds}", k + 1, cfg.model.outer_folds)
    overall = _scores(y, proba, hard)
    types = frame["Type"].astype(str).to_numpy()
    per_type = {t: _scores(y[types == t], proba[types == t], hard[types == t]) for t in ("L", "M", "H")}
    return {
        "f1": overall["f1"],
        "precision": overall["precision"],
        "recall": overall["recall"],
        "pr_auc": overall["pr_auc"],
        "counts": {k: overall[k] for k in ("tp", "fp", "fn", "n", "positives")},
        "per_type": per_type,
        "cv_f1_fold_mean": float(np.mean(fold_f1)),
        "cv_f1_fold_std": float(np.std(fold_f1)),
        "thresholds": thresholds,
        "features": list(x.columns),
        "outer_folds": cfg.model.outer_folds,
        "inner_folds": cfg.model.inner_folds,
        "seed": cfg.seed,
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
