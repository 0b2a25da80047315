"""Retraining options, one class for the monitor (which triggers) and ``forewarn retrain`` (which runs).

Environment: ``FOREWARN_RETRAIN__<NAME>``, e.g. ``FOREWARN_RETRAIN__COOLDOWN_S=21600`` or
``FOREWARN_RETRAIN__RUNNER=kubernetes``. A service's settings embed :class:`RetrainOptions` as a field
named ``retrain`` to read the same variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from forewarn.stack.config import StackSettings

Runner = Literal["subprocess", "kubernetes"]


class RetrainOptions(BaseModel):
    runner: Runner = Field("subprocess", description="How the monitor starts a run: a local detached "
                                                     "subprocess, or a Kubernetes Job from job_template.")
    # Trigger policy (forewarn.retraining.trigger.TriggerPolicy).
    sustained_windows: int = Field(3, ge=1, description="Consecutive drifted windows that trigger a run.")
    min_new_labels: int = Field(100, ge=1, description="New labels since the last training that trigger a run.")
    cooldown_s: float = Field(6 * 3600.0, ge=0, description="Wall seconds after a run before the next one.")
    debounce_s: float = Field(600.0, ge=0, description="Wall seconds between two triggers (a started run "
                                                       "may take a while to show as running).")
    # The run (forewarn retrain).
    lake_dir: Path | None = Field(None, description="Parquet lake the training set is built from.")
    data_dir: Path | None = Field(None, description="A training set ('etl build --out') to retrain from instead "
                                                    "of building one from the lake (a set kept up to date "
                                                    "elsewhere, or tests).")
    catch_up: bool = Field(False, description="Run 'etl stream --once' into the lake before building.")
    workdir: Path = Field(Path(".forewarn/retrain"), description="Training sets and logs of the runs.")
    horizon: str = Field("24h", description="Failure horizon of the training set ('etl build --horizon').")
    seed: int = Field(0, description="Seed of folds, search and models.")
    quick: bool = Field(False, description="Few trials, LightGBM only (demo, tests).")
    fairness_limit: float = Field(0.2, ge=0, description="'train --fairness-limit'.")
    keep_runs: int = Field(3, ge=1, description="Training sets of past runs kept in the workdir.")
    # Gates (forewarn.training.promote.GateLimits; the same gates as 'forewarn promote').
    min_f1: float = Field(0.5, description="Holdout F1 floor.")
    max_fairness_gap: float = Field(0.2, description="Largest allowed gap between machine types.")
    max_calibration_error: float = Field(0.1, description="Largest allowed holdout ECE.")
    # The lock (forewarn.retraining.lock.RetrainLock).
    lock_ttl_s: float = Field(120.0, gt=1, description="Lock lifetime; a heartbeat extends it while the run "
                                                        "lives, so a dead run's lock lapses after this.")
    # Kubernetes runner.
    job_template: Path = Field(Path("/etc/forewarn/retrain/job.yaml"),
                               description="Job manifest the kubernetes runner creates a Job from "
                                           "(k8s/base/retrain/job.yaml, mounted from its ConfigMap).")
    namespace: str | None = Field(None, description="Namespace of the Job (default: the template's / kubectl's).")
    kubectl: str = Field("kubectl", description="kubectl binary.")


class RetrainSettings(StackSettings):
    """``forewarn retrain``'s settings: Kafka, Redis, MLflow, the state dir, and ``retrain``."""

    retrain: RetrainOptions = RetrainOptions()
