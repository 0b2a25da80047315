"""Choosing and judging a classifier on predictions it did not train on.

* :func:`tune`: Optuna over a candidate's search space; each trial is scored by grouped, time-aware
  cross-validation (folds from :class:`forewarn.training.splits.GroupedTimeSplit`), reports the pooled
  out-of-fold PR-AUC after each fold so the MedianPruner can stop a poor trial early, and hands its
  parameters and scores to a :data:`TrialSink` (the pipeline logs each one as a nested MLflow run).
* :func:`fit_calibration`: isotonic regression on out-of-fold probabilities, as the ``(raw, prob)`` map
  that :class:`forewarn.model_bundle.ModelBundle` applies with ``np.interp``.
* :func:`classification_scores`, :func:`expected_calibration_error`, :func:`alert_lead_times`: holdout
  figures, pure numpy, shared by ``forewarn train`` and ``forewarn promote``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forewarn.training.candidates import Candidate, FitData
from forewarn.training.metrics import binary_scores, pr_auc

Folds = list[tuple[np.ndarray, np.ndarray]]
# sink(candidate, trial number, params, metrics, state): called once per trial, pruned ones included.
TrialSink = Callable[[str, int, dict[str, Any], dict[str, float], str], None]
# step(message): called after each trial.
TrialStep = Callable[[str], None]

Calibration = tuple[np.ndarray, np.ndarray]


# --- calibration and scores ---------------------------------------------------------------------------


def fit_calibration(raw: np.ndarray, y: np.ndarray) -> Calibration | None:
    """Isotonic map from raw to calibrated probability, or None when ``y`` holds one class only.

    sklearn's isotonic prediction interpolates linearly between strictly increasing thresholds and clips
    outside them, which is exactly ``np.interp(raw, *map)``: the scorer reproduces it bit for bit."""
    from sklearn.isotonic import IsotonicRegression

    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return None
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(raw, y)
    x, p = np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)
    if len(x) < 2:
        return None
    return x, p


def apply_calibration(calibration: Calibration | None, raw: np.ndarray) -> np.ndarray:
    """What :meth:`ModelBundle.predict` does after the booster."""
    raw = np.asarray(raw, dtype=np.float64)
    return raw if calibration is None else np.interp(raw, calibration[0], calibration[1])


def expected_calibration_error(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Mean |observed failure rate - mean predicted probability| over equal-width bins, row-weighted."""
    y = np.asarray(y, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    which = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += abs(float(y[inside].mean()) - float(prob[inside].mean())) * float(inside.sum())
    return total / len(y)


def classification_scores(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 at ``threshold``; PR-AUC, Brier and calibration error of ``prob``."""
    y = np.asarray(y).astype(int)
    prob = np.asarray(prob, dtype=np.float64)
    hard = (prob >= threshold).astype(int)
    scores = binary_scores(y, hard)
    return {
        "accuracy": float(np.mean(hard == y)) if len(y) else float("nan"),
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        "pr_auc": pr_auc(y, prob),
        "brier": float(np.mean((prob - y) ** 2)) if len(y) else float("nan"),
        "calibration_error": expected_calibration_error(y, prob),
        "rows": float(len(y)),
        "positives": float(y.sum()),
    }


@dataclass(frozen=True)
class LeadTimes:
    """For each failure: ms between the first row at or above the threshold and the failure (None: missed)."""

    failures: list[tuple[str, int]]  # (machine_id, failure ts)
    lead_ms: list[int | None]

    @property
    def detected(self) -> int:
        return sum(v is not None for v in self.lead_ms)

    def summary(self) -> dict[str, float]:
        found = [v for v in self.lead_ms if v is not None]
        hours = np.asarray(found, dtype=np.float64) / 3_600_000.0
        return {
            "failures": float(len(self.lead_ms)),
            "failures_detected": float(len(found)),
            "detection_rate": len(found) / len(self.lead_ms) if self.lead_ms else float("nan"),
            "lead_time_mean_h": float(hours.mean()) if len(found) else float("nan"),
            "lead_time_median_h": float(np.median(hours)) if len(found) else float("nan"),
            "lead_time_min_h": float(hours.min()) if len(found) else float("nan"),
        }


def failure_times(groups: np.ndarray, times: np.ndarray, label: np.ndarray,
                  time_to_failure_ms: np.ndarray | None) -> np.ndarray:
    """Per row, the ts of the failure its positive label points at (NaN for negative rows).

    With ``time_to_failure_ms`` it is exact. Without it, each run of consecutive positive rows of a
    machine is one failure placed at the run's last row (an underestimate of at most one interval)."""
    label = np.asarray(label).astype(bool)
    out = np.full(len(label), np.nan)
    if time_to_failure_ms is not None:
        ttf = np.asarray(time_to_failure_ms, dtype=np.float64)
        known = label & np.isfinite(ttf)
        out[known] = np.asarray(times, dtype=np.float64)[known] + ttf[known]
        if known.sum() == label.sum():
            return out
    groups = np.asarray(groups)
    boundary = np.r_[True, groups[1:] != groups[:-1]] if len(groups) else np.zeros(0, dtype=bool)
    run_start = label & (boundary | ~np.r_[False, label[:-1]])
    run_id = np.cumsum(run_start)
    for rid in np.unique(run_id[label & np.isnan(out)]):
        rows = np.flatnonzero(label & (run_id == rid))
        out[rows] = float(times[rows[-1]])
    return out


def alert_lead_times(groups: np.ndarray, times: np.ndarray, label: np.ndarray, failure_ts: np.ndarray,
                     risk: np.ndarray, threshold: float) -> LeadTimes:
    """How long before each failure the calibrated risk first reached the decision threshold.

    Only rows labelled positive for that failure count (the horizon before it, in the same life), so an
    alarm raised long before, or for an earlier failure, is not credited. Rows sorted by machine, time."""
    label = np.asarray(label).astype(bool)
    failure_ts = np.asarray(failure_ts, dtype=np.float64)
    keys: dict[tuple[str, int], list[int]] = {}
    for row in np.flatnonzero(label & np.isfinite(failure_ts)).tolist():
        keys.setdefault((str(groups[row]), int(failure_ts[row])), []).append(row)
    failures, leads = [], []
    for key in sorted(keys):
        rows = np.asarray(keys[key])
        rows = rows[np.argsort(np.asarray(times)[rows], kind="stable")]
        hits = rows[np.asarray(risk)[rows] >= threshold]
        failures.append(key)
        leads.append(int(key[1] - int(times[hits[0]])) if len(hits) else None)
    return LeadTimes(failures, leads)


# --- cross-validation and search ----------------------------------------------------------------------


@dataclass
class CvResult:
    oof: np.ndarray  # raw out-of-fold probability, NaN where a row was never validated
    fold_pr_auc: list[float]

    @property
    def covered(self) -> np.ndarray:
        return np.isfinite(self.oof)


def pooled_pr_auc(y: np.ndarray, oof: np.ndarray) -> float:
    covered = np.isfinite(oof)
    return pr_auc(y[covered], oof[covered]) if covered.any() else float("nan")


def cross_validate(candidate: Candidate, data: FitData, params: dict[str, Any], seed: int, folds: Folds,
                   on_fold: Callable[[int, float], None] | None = None) -> CvResult:
    """Out-of-fold raw probabilities; ``on_fold(k, pooled PR-AUC so far)`` may raise to stop early."""
    oof = np.full(len(data), np.nan)
    fold_scores: list[float] = []
    for k, (train, val) in enumerate(folds):
        model = candidate.fit(data.take(train), params, seed)
        oof[val] = candidate.predict(model, data.take(val))
        fold_scores.append(pr_auc(data.y[val], oof[val]) if len(val) else float("nan"))
        if on_fold is not None:
            on_fold(k, pooled_pr_auc(data.y, oof))
    return CvResult(oof, fold_scores)


@dataclass
class TuneResult:
    candidate: str
    best_params: dict[str, Any]
    best_score: float  # pooled out-of-fold PR-AUC
    best_number: int
    cv: CvResult
    trials_complete: int
    trials_pruned: int
    trials: list[dict[str, Any]] = field(default_factory=list)


def tune(candidate: Candidate, data: FitData, folds: Folds, *, trials: int, seed: int, quick: bool,
         sink: TrialSink | None = None, step: TrialStep | None = None) -> TuneResult:
    """Bounded TPE search (seeded) with median pruning; the best trial's out-of-fold predictions are kept."""
    import optuna

    kept: dict[int, CvResult] = {}
    history: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        params = candidate.suggest(trial, quick)
        metrics: dict[str, float] = {}
        state = "complete"

        def on_fold(k: int, pooled: float) -> None:
            metrics[f"cv_pr_auc_after_fold_{k}"] = pooled
            if math.isfinite(pooled):
                trial.report(pooled, k)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pooled PR-AUC {pooled:.4f} after fold {k} is below the median")

        try:
            result = cross_validate(candidate, data, params, seed, folds, on_fold)
            covered = result.covered
            metrics["cv_pr_auc"] = pooled_pr_auc(data.y, result.oof)
            metrics["cv_brier_raw"] = float(np.mean((result.oof[covered] - data.y[covered]) ** 2))
            for k, value in enumerate(result.fold_pr_auc):
                metrics[f"fold_{k}_pr_auc"] = value
            kept[trial.number] = result
            return metrics["cv_pr_auc"]
        except optuna.TrialPruned:
            state = "pruned"
            raise
        finally:
            history.append({"number": trial.number, "state": state, "params": params, **metrics})
            if sink is not None:
                sink(candidate.name, trial.number, params, metrics, state)
            if step is not None:
                step(f"{candidate.name} trial {trial.number + 1}/{trials} ({state})")

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(1, trials // 2)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=trials, gc_after_trial=False, show_progress_bar=False)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"{candidate.name}: no Optuna trial completed")
    # Ties (same pooled PR-AUC) go to the earliest trial, so the choice does not depend on float noise.
    best = max(complete, key=lambda t: (float(t.value), -t.number))  # type: ignore[arg-type]
    return TuneResult(
        candidate=candidate.name,
        best_params=dict(history[best.number]["params"]),
        best_score=float(best.value),  # type: ignore[arg-type]
        best_number=best.number,
        cv=kept[best.number],
        trials_complete=len(complete),
        trials_pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        trials=history,
    )
