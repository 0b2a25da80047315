"""``forewarn train``: tune, calibrate, judge and register the failure model (see training/pipeline.py)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from forewarn.training.pipeline import TrainConfig, TrainResult


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task(title, total=None)
        yield lambda message, done, total: bar.update(task, description=f"{title}: {message}", completed=done,
                                                      total=total)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        data: Annotated[Path, typer.Option("--data", help="Training set: the --out folder of 'forewarn etl build'.")
                        ] = Path("data/training"),
        experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "forewarn-train",
        trials: Annotated[int | None, typer.Option(min=1, help="Optuna trials per candidate (default 20; "
                                                               "--quick: 3).")] = None,
        seed: Annotated[int, typer.Option(help="Seed of folds, search and models.")] = 0,
        horizon_label: Annotated[str, typer.Option("--horizon-label", help="0/1 label column.")
                                 ] = "failure_within_horizon",
        fairness_limit: Annotated[float, typer.Option(help="Largest allowed gap between machine types "
                                                           "(recall, false-positive rate).")] = 0.2,
        do_register: Annotated[bool, typer.Option("--register/--no-register", help="Register the model.")] = True,
        quick: Annotated[bool, typer.Option("--quick", help="Few trials, LightGBM only (demo, tests).")] = False,
        max_rows: Annotated[int | None, typer.Option(min=1000, help="Thin larger sets evenly per machine "
                                                                   "(default 200000; --quick: 60000).")] = None,
        horizon: Annotated[str | None, typer.Option(help="Horizon text for the bundle (default: from the "
                                                         "manifest).")] = None,
        threads: Annotated[int, typer.Option(min=1, max=2, help="Threads per model fit (1 is faster on a busy "
                                                                "host).")] = 1,
        config: Annotated[str | None, typer.Option(help="Asset config the features service runs (default: settings).")
                          ] = None,
        metrics_out: Annotated[Path | None, typer.Option("--metrics-out", help="Also write the run, version and "
                                                         "holdout metrics to this JSON file (dvc.yaml's metrics).")
                               ] = None,
        dvc_lock: Annotated[Path | None, typer.Option("--dvc-lock", help="dvc.lock that built --data: its DVC hash "
                                                      "is logged as the run tag 'dataset.dvc_md5'.")] = None,
    ) -> None:
        """Train LightGBM, Random Forest (and an LSTM when torch is installed), tuned by Optuna on grouped,
        time-aware folds; log everything to MLflow and register the calibrated LightGBM bundle."""
        import optuna

        from forewarn.settings import ForewarnSettings
        from forewarn.training.pipeline import TrainConfig, dvc_dataset_md5, run_training

        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        settings = ForewarnSettings()
        base = TrainConfig.quick_config(data) if quick else TrainConfig(data=data)
        cfg = replace(base, experiment=experiment, trials=trials or base.trials, seed=seed, label=horizon_label,
                      fairness_limit=fairness_limit, register=do_register, max_rows=max_rows or base.max_rows,
                      horizon=horizon, asset_config=config, num_threads=threads,
                      dataset_dvc_md5=dvc_dataset_md5(data, dvc_lock) if dvc_lock else None)
        with _progress("train") as step:
            result = run_training(cfg, tracking_uri=settings.mlflow.tracking_uri,
                                  model_name=settings.mlflow.model_name, step=step)
        m = result.metrics
        for key in ("holdout_f1", "holdout_precision", "holdout_recall", "holdout_pr_auc", "holdout_brier",
                    "calibration_error", "holdout_lead_time_median_h", "fairness_gap", "rul_rmse"):
            if key in m:
                typer.echo(f"{key:>28}: {m[key]:.4f}")
        typer.echo(f"{'fairness gate':>28}: {'pass' if result.fairness.passed else 'FAIL'}")
        for note in result.notes:
            typer.echo(f"note: {note}")
        where = (f"registered {settings.mlflow.model_name} version {result.version}" if result.version
                 else "not registered")
        typer.echo(f"run {result.run_id} (experiment {cfg.experiment}); {where}")
        if metrics_out is not None:
            _write_metrics(metrics_out, result, cfg, settings.mlflow.model_name)


def _write_metrics(path: Path, result: TrainResult, cfg: TrainConfig, model_name: str) -> None:
    """What `forewarn evaluate model` and `dvc metrics show` read: which model, on which data, how good."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"run_id": result.run_id, "experiment": cfg.experiment, "model": model_name,
                "version": result.version, "data_hash": result.holdout.get("data_hash"),
                "dataset_dvc_md5": cfg.dataset_dvc_md5, "fairness_gate_passed": result.fairness.passed,
                "metrics": {k: v for k, v in sorted(result.metrics.items()) if math.isfinite(v)}}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
