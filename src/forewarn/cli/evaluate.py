"""``forewarn evaluate``: model benchmarks on the real datasets (C-MAPSS, AI4I 2020), and ``evaluate model``:
a registered version re-scored on its holdout with the gates of ``forewarn promote`` (dvc.yaml's last stage).

Parse the options, run the benchmark from :mod:`forewarn.training.evaluate` with a progress bar, print
a summary and write the figures as JSON. Training libraries are imported only when a command runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from forewarn.errors import UserError

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Folder holding cmapss/ and ai4i2020/ (the shared, read-only datasets).",
        show_default=True,
    ),
]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the figures to this JSON file.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for folds, cut points and models.")]
Fast = Annotated[
    bool, typer.Option("--fast", help="Cheaper configuration (one seed, fewer trees and folds) for smoke runs.")
]

_DEFAULT_DATA_DIR = Path("../shared/data")


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=None)

        def step(message: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {message}", completed=done, total=total)

        yield step


def _emit(result: dict[str, Any], keys: list[str], json_path: Path | None) -> None:
    for key in keys:
        value = result.get(key)
        shown = f"{value:.4f}" if isinstance(value, float) else value
        typer.echo(f"{key:>22}: {shown}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {json_path}")


def cmapss(
    subset: Annotated[str, typer.Option("--subset", help="FD001, FD002, FD003 or FD004.")] = "FD001",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    json_path: JsonOut = None,
    seed: Seed = 0,
    fast: Fast = False,
) -> None:
    """RUL on NASA C-MAPSS: grouped CV on training engines, then RMSE / NASA score on the test engines."""
    from dataclasses import replace

    from forewarn.training.datasets import require_cmapss_files
    from forewarn.training.evaluate import CmapssEvalConfig, evaluate_cmapss

    require_cmapss_files(data_dir, subset)  # fail before drawing a progress bar
    config = replace(CmapssEvalConfig.fast() if fast else CmapssEvalConfig(), seed=seed)
    with _progress(f"C-MAPSS {subset.upper()}") as step:
        result = evaluate_cmapss(data_dir, subset, config, step)
    keys = [
        "subset",
        "rmse",
        "nasa_score",
        "rmse_uncapped",
        "n_test_units",
        "cv_rmse",
        "cv_rmse_fold_std",
        "cv_nasa_score_per_100",
        "wall_s",
        "peak_rss_mb",
    ]
    _emit(result, keys, json_path)


def ai4i(
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    json_path: JsonOut = None,
    seed: Seed = 0,
) -> None:
    """Machine failure on AI4I 2020 from sensors only: nested stratified CV, threshold from inner folds."""
    from forewarn.training.datasets import require_ai4i_file
    from forewarn.training.evaluate import Ai4iEvalConfig, evaluate_ai4i

    require_ai4i_file(data_dir)  # fail before drawing a progress bar
    config = Ai4iEvalConfig(seed=seed)
    with _progress("AI4I 2020") as step:
        result = evaluate_ai4i(data_dir, config, step)
    _emit(result, ["f1", "precision", "recall", "pr_auc", "cv_f1_fold_mean", "wall_s", "peak_rss_mb"], None)
    for name, scores in result["per_type"].items():
        typer.echo(
            f"{'type ' + name:>22}: f1 {scores['f1']:.4f} precision {scores['precision']:.4f} "
            f"recall {scores['recall']:.4f} pr_auc {scores['pr_auc']:.4f} (n={scores['n']})"
        )
    _emit(result, [], json_path)


def model(
    train_metrics: Annotated[Path, typer.Option("--train-metrics", help="The --metrics-out file of 'forewarn train' "
                                                "(names the registered version to evaluate).")],
    json_path: JsonOut = None,
    min_f1: Annotated[float, typer.Option(help="Holdout F1 floor (as 'forewarn promote').")] = 0.5,
    max_fairness_gap: Annotated[float, typer.Option(help="Largest allowed gap between machine types.")] = 0.2,
    max_calibration_error: Annotated[float, typer.Option(help="Largest allowed holdout ECE.")] = 0.1,
) -> None:
    """A registered version as the scorer loads it: re-score its bundle on its training run's holdout, compare
    with what training recorded, and apply the gates of 'forewarn promote' (reports them; promotes nothing)."""
    import os

    from forewarn.settings import ForewarnSettings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    trained = json.loads(train_metrics.read_text(encoding="utf-8"))
    if not trained.get("version"):
        raise UserError(f"{train_metrics} names no registered version: train with --register")
    result = _evaluate_version(ForewarnSettings().mlflow.tracking_uri, trained["model"], str(trained["version"]),
                               (min_f1, max_fairness_gap, max_calibration_error))
    _emit(result, ["model", "version", "rescored_f1", "rescored_pr_auc", "rescored_brier", "reproduces_training",
                   "gates_passed"], None)
    for reason in result["gate_failures"]:
        typer.echo(f"{'gate':>22}: fails: {reason}")
    _emit(result, [], json_path)


def _evaluate_version(tracking_uri: str, name: str, version: str, limits: tuple[float, float, float]
                      ) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from forewarn.features import FEATURE_SET_VERSION
    from forewarn.training.pipeline import DVC_MD5_TAG, HOLDOUT_ARTIFACT, require_mlflow
    from forewarn.training.promote import GateLimits, gate_failures, rescore

    require_mlflow(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    tags = dict(MlflowClient(tracking_uri).get_model_version(name, version).tags)
    definition = mlflow.artifacts.load_dict(f"runs:/{tags['train_run_id']}/{HOLDOUT_ARTIFACT}")
    scores, notes = rescore(tracking_uri, name, [version], {version: tags}, definition)
    if scores is None:
        raise UserError(f"version {version} of {name!r} could not be re-scored: {'; '.join(notes)}")
    rescored = scores[version]
    recorded = {key: float(tags[f"holdout_{key}"]) for key in ("f1", "pr_auc", "brier")}
    failures = gate_failures(tags, GateLimits(*limits), FEATURE_SET_VERSION)
    # The bundle the registry serves must give the figures training logged, to rounding.
    reproduces = all(abs(getattr(rescored, key) - value) <= 1e-6 for key, value in recorded.items())
    return {"model": name, "version": version, "train_run_id": tags["train_run_id"],
            "dataset_dvc_md5": tags.get(DVC_MD5_TAG), "holdout_rows": int(definition["rows"]),
            "rescored_f1": rescored.f1, "rescored_pr_auc": rescored.pr_auc, "rescored_brier": rescored.brier,
            **{f"recorded_{key}": value for key, value in recorded.items()},
            "reproduces_training": reproduces, "gates_passed": not failures, "gate_failures": failures,
            "notes": notes}


def register(app: typer.Typer) -> None:
    evaluate = typer.Typer(
        name="evaluate",
        help="Benchmark the models on the real datasets (cmapss, ai4i; reads ../shared/data by default), or "
        "check a registered version on its holdout with the promotion gates (model).",
        no_args_is_help=True,
    )
    evaluate.command("cmapss")(cmapss)
    evaluate.command("ai4i")(ai4i)
    evaluate.command("model")(model)
    app.add_typer(evaluate, name="evaluate")
