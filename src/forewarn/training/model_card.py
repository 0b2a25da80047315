"""What a trained model is, in words and pictures: the Markdown model card and the diagnostic plots.

The card is written for the person deciding whether to promote: data version, how it was validated,
how it scored (overall, per machine type, against the other candidates), what it relies on, and where
it should not be trusted. Plots use matplotlib's object API (no pyplot state), so nothing global changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from forewarn.training.fairness import FairnessReport


@dataclass
class CardInputs:
    model_name: str
    version: str | None
    run_id: str
    data: Any  # pipeline.TrainingSet
    definition: dict[str, Any]
    config: dict[str, Any]
    results: dict[str, dict[str, Any]]
    served: str
    cv_winner: str
    metrics: dict[str, float]
    per_type: dict[str, dict[str, float]]
    fairness: FairnessReport
    importance: list[tuple[str, float]]
    notes: list[str]
    feature_set_version: str


def top_importance(names: list[str], importance: np.ndarray, k: int = 15) -> list[tuple[str, float]]:
    """The k largest importances, as shares of the total (ties broken by name, so the order is stable)."""
    values = np.nan_to_num(np.asarray(importance, dtype=np.float64))
    total = float(values.sum())
    order = sorted(range(len(names)), key=lambda i: (-values[i], names[i]))[:k]
    return [(names[i], float(values[i]) / total if total > 0 else 0.0) for i in order]


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def render(c: CardInputs) -> str:
    m = c.metrics
    ts = c.data
    title = f"{c.model_name} version {c.version}" if c.version else f"{c.model_name} (not registered)"
    lines = [
        f"# Model card: {title}",
        "",
        f"Failure within the horizon ({_f(ts.horizon)}) as a calibrated probability, plus remaining useful "
        f"life when a RUL model is bundled. Served by the scorer as a LightGBM booster (feature set "
        f"{c.feature_set_version}); training run `{c.run_id}`.",
        "",
        "## Data",
        "",
        f"- data version (manifest content hash): `{ts.data_hash}`",
        f"- rows used: {len(ts.frame)} ({ts.frame['machine_id'].nunique()} machines; types "
        f"{', '.join(ts.machine_types)}); label `{ts.label}`; features: {len(ts.feature_names)} (the union "
        "of the service's feature names over these types, NaN where a type lacks a sensor)",
        f"- source: `{ts.source}`",
        f"- holdout (last fold of GroupedTimeSplit({c.definition['splitter']['n_splits']})): "
        f"{c.definition['rows']} rows, {c.definition['positives']} positive, {c.definition['failures']} failures, "
        "machines "
        f"{', '.join(c.definition['machine_ids'])}, from ts {int(c.definition['ts_from'])} (epoch ms); "
        "development rows are the other machines before that time",
        f"- tuning: Optuna (TPE, seed {c.config['seed']}, MedianPruner), {c.config['trials']} trials per "
        f"candidate, {c.config['cv_splits']} grouped time-aware folds of the development rows",
        "",
        "## Candidates",
        "",
        "| candidate | CV PR-AUC | holdout F1 | holdout PR-AUC | holdout Brier | trials (pruned) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in c.results.items():
        h = r["holdout"]
        lines.append(f"| {name} | {_f(r['cv_pr_auc'])} | {_f(h['f1'])} | {_f(h['pr_auc'])} | {_f(h['brier'])} | "
                     f"{r['trials_complete'] + r['trials_pruned']} ({r['trials_pruned']}) |")
    if c.cv_winner != c.served:
        lines += ["", f"**{c.cv_winner} scored higher in cross-validation** than {c.served}. The scorer serves "
                  f"LightGBM boosters only, so {c.served} is the registered model; serving {c.cv_winner} would need "
                  "a scorer that loads it."]
    else:
        lines += ["", f"{c.served} has the best cross-validated PR-AUC and is the registered model."]
    lines += [
        "",
        "## Holdout metrics (registered model, calibrated probabilities)",
        "",
        f"- decision threshold {_f(m['decision_threshold'])} (F1-best on out-of-fold predictions; the alerter "
        "applies its own policy thresholds to these probabilities)",
        f"- accuracy {_f(m['holdout_accuracy'])}, precision {_f(m['holdout_precision'])}, recall "
        f"{_f(m['holdout_recall'])}, F1 {_f(m['holdout_f1'])}",
        f"- PR-AUC {_f(m['holdout_pr_auc'])}, Brier {_f(m['holdout_brier'])}, calibration error (ECE, 10 bins) "
        f"{_f(m['calibration_error'])} (raw booster: {_f(m.get('holdout_calibration_error_raw'))})",
        f"- alert lead time: {int(m.get('holdout_failures_detected', 0))} of {int(m.get('holdout_failures', 0))} "
        f"failures caught, median {_f(m.get('holdout_lead_time_median_h'), 2)} h, mean "
        f"{_f(m.get('holdout_lead_time_mean_h'), 2)} h before the failure",
    ]
    if "rul_rmse" in m:
        lines.append(f"- RUL: RMSE {_f(m['rul_rmse'], 3)}, NASA score {_f(m['rul_nasa_score'], 2)} "
                     f"({int(m['rul_rows'])} holdout rows)")
    lines += ["", "## Per machine type (holdout)", "",
              "| type | rows | positive rows | recall | false-positive rate | precision | F1 | PR-AUC |",
              "|---|---|---|---|---|---|---|---|"]
    for t, s in c.per_type.items():
        fpr = c.fairness.by_type.get(t, {}).get("false_positive_rate")
        lines.append(f"| {t} | {int(s['rows'])} | {int(s['positives'])} | {_f(s['recall'])} | {_f(fpr)} | "
                     f"{_f(s['precision'])} | {_f(s['f1'])} | {_f(s['pr_auc'])} |")
    fair = c.fairness
    lines += ["", f"Fairness gate: largest gap {_f(fair.largest_gap)} ({fair.worst_metric or '-'}), limit "
              f"{_f(fair.limit)}: **{'pass' if fair.passed else 'FAIL'}**.",
              *(f"- {note}" for note in fair.notes),
              "", "## What the model relies on (LightGBM gain, share of total)", ""]
    lines += [f"{i + 1}. `{name}` {share:.1%}" for i, (name, share) in enumerate(c.importance)]
    lines += [
        "", "## Limits", "",
        f"- Validated on {c.definition['rows']} holdout rows around {c.definition['failures']} failures; figures "
        "from few failures carry wide uncertainty.",
        "- The registered booster is fit on the development rows only (the holdout stays unseen, so promotion "
        "can compare models on it).",
        "- Machine types absent from the training data are scored out of distribution.",
        "- Calibration is isotonic on out-of-fold predictions; it holds while the failure rate and the sensors' "
        "behaviour stay as in the training period (watch the drift job).",
        *(f"- {note}" for note in c.notes),
        "",
    ]
    return "\n".join(lines)


def figures(y: np.ndarray, raw: np.ndarray, prob: np.ndarray, names: list[str], importance: np.ndarray,
            top: int = 20) -> dict[str, Any]:
    """PR curve, calibration curve (raw and calibrated) and feature importance, as matplotlib Figures."""
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    out: dict[str, Any] = {}
    y = np.asarray(y).astype(int)
    if y.sum() > 0:
        fig = Figure(figsize=(5, 4))
        ax = fig.add_subplot()
        precision, recall, _ = precision_recall_curve(y, prob)
        ax.step(recall, precision, where="post")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)", xlim=(0, 1), ylim=(0, 1.02))
        out["pr_curve"] = fig
        fig = Figure(figsize=(5, 4))
        ax = fig.add_subplot()
        for label, values in (("raw", raw), ("calibrated", prob)):
            observed, predicted = calibration_curve(y, np.clip(values, 0, 1), n_bins=10, strategy="uniform")
            ax.plot(predicted, observed, marker="o", label=label)
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set(xlabel="predicted probability", ylabel="observed failure rate", title="Calibration (holdout)")
        ax.legend()
        out["calibration_curve"] = fig
    shares = top_importance(names, importance, top)
    if shares and any(s > 0 for _, s in shares):
        fig = Figure(figsize=(6, 0.3 * len(shares) + 1))
        ax = fig.add_subplot()
        ax.barh([n for n, _ in reversed(shares)], [s for _, s in reversed(shares)])
        ax.set(xlabel="share of total importance", title="Feature importance")
        fig.tight_layout()
        out["feature_importance"] = fig
    return out
