"""One retraining run: (lake catch-up ->) training set -> train -> the promotion gates -> record.

The Spark steps run as the same ``forewarn etl`` commands a user types, in subprocesses (a JVM each);
training and the gates call the functions behind ``forewarn train`` and ``forewarn promote``, so the
gates are promote's own (holdout F1 floor, fairness gap, calibration error, feature set, and beating
the champion re-scored on the candidate's most recent time-ordered holdout) and nothing is duplicated.

:func:`plan` is pure (what would run); :func:`execute` runs it under the lock and always leaves a
record, promoted, refused or failed.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from forewarn.errors import UserError
from forewarn.retraining import record as records
from forewarn.retraining.trigger import trigger_kind
from forewarn.training.promote import GateLimits

PROMOTED, REFUSED, UNCHANGED, FAILED = "promoted", "refused", "unchanged", "failed"


@dataclass(frozen=True)
class RetrainRequest:
    reason: str
    workdir: Path
    lake_dir: Path | None = None
    data_dir: Path | None = None  # an existing training set: no lake build
    catch_up: bool = False
    horizon: str = "24h"
    seed: int = 0
    quick: bool = False
    fairness_limit: float = 0.2
    limits: GateLimits = GateLimits()
    experiment: str = "forewarn-retrain"
    keep_runs: int = 3
    runner: str = "subprocess"


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]  # the forewarn command line (after 'forewarn')
    subprocess: bool  # False: run in this process through the command's function


@dataclass(frozen=True)
class Plan:
    run_id: str
    request: RetrainRequest
    run_dir: Path
    data_dir: Path
    steps: tuple[Step, ...]

    def commands(self) -> list[str]:
        return ["forewarn " + " ".join(step.argv) for step in self.steps]


def plan(request: RetrainRequest, run_id: str | None = None) -> Plan:
    run_id = run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    run_dir = request.workdir / "runs" / run_id
    steps: list[Step] = []
    if request.data_dir is not None:
        data_dir = request.data_dir
    else:
        if request.lake_dir is None:
            raise UserError("say where the data is: --lake DIR (the Parquet lake the training set is built "
                            "from; or FOREWARN_RETRAIN__LAKE_DIR) or --data DIR (an existing training set)")
        data_dir = run_dir / "training"
        lake = str(request.lake_dir)
        if request.catch_up:
            steps.append(Step("catch-up", ("etl", "stream", "--once", "--lake", lake), True))
        steps.append(Step("build", ("etl", "build", "--lake", lake, "--out", str(data_dir), "--horizon",
                                    request.horizon), True))
    train = ["train", "--data", str(data_dir), "--seed", str(request.seed), "--experiment", request.experiment,
             "--fairness-limit", str(request.fairness_limit)]
    steps.append(Step("train", tuple(train + (["--quick"] if request.quick else [])), False))
    limits = request.limits
    steps.append(Step("gates", ("promote", "--version", "<the version train registers>", "--min-f1",
                                str(limits.min_f1), "--max-fairness-gap", str(limits.max_fairness_gap),
                                "--max-calibration-error", str(limits.max_calibration_error)), False))
    return Plan(run_id, request, run_dir, data_dir, tuple(steps))


def gate_descriptions(limits: GateLimits) -> list[str]:
    return [f"holdout F1 >= {limits.min_f1}", f"fairness gap between machine types <= {limits.max_fairness_gap}",
            f"calibration error (ECE) <= {limits.max_calibration_error}",
            "feature set = the features service's",
            "beats the champion, both re-scored on the candidate's most recent time-ordered holdout"]


# --- reading what is there -------------------------------------------------------------------------


def dataset_facts(data_dir: Path) -> dict[str, Any]:
    """Content hash, rows and the event-time range of a training set (whatever of it is readable)."""
    facts: dict[str, Any] = {"dataset_hash": None, "rows": None, "data_range": None}
    manifest_path = data_dir / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            facts["dataset_hash"] = manifest.get("content_hash")
            facts["rows"] = (manifest.get("rows") or {}).get("training")
        except (OSError, json.JSONDecodeError):
            pass
    try:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        table = ds.dataset(data_dir / "dataset", format="parquet", partitioning="hive").to_table(columns=["ts"])
        if table.num_rows:
            bounds = pc.min_max(table["ts"]).as_py()
            lo, hi = int(bounds["min"]), int(bounds["max"])
            facts["data_range"] = {"min_ts": lo, "max_ts": hi, "min_iso": records.iso_ms(lo),
                                   "max_iso": records.iso_ms(hi)}
            facts["rows"] = facts["rows"] or table.num_rows
    except Exception:  # noqa: BLE001, S110 - the range is a help for readers, not a gate
        pass
    return facts


def champion_facts(tracking_uri: str, name: str, alias: str) -> dict[str, Any] | None:
    """The current champion's version and recorded holdout figures; None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # No model or no alias yet means no champion; anything else (MLflow away) is not an answer.
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    tags = dict(version.tags)
    return {"version": str(version.version), "run_id": version.run_id,
            **{k: tags[k] for k in ("holdout_f1", "holdout_pr_auc", "calibration_error", "fairness_gap",
                                    "data_hash") if k in tags}}


# --- running ---------------------------------------------------------------------------------------


@dataclass
class Context:
    """Where the run reports to (settings, resolved)."""

    tracking_uri: str
    model_name: str
    alias: str
    state_dir: Path
    kafka_settings: Any | None  # None: no Kafka audit / health events
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the subprocesses


@dataclass
class Result:
    record: dict[str, Any]
    audit_path: Path
    notes: list[str]

    @property
    def decision(self) -> str:
        return str(self.record["decision"])


def _run_subprocess(step: Step, log_path: Path, env: dict[str, str]) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ forewarn {' '.join(step.argv)}\n".encode())
        log.flush()
        done = subprocess.run([sys.executable, "-m", "forewarn.cli", *step.argv], stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        raise UserError(f"step {step.name} ('forewarn {' '.join(step.argv)}') exited {done.returncode}; "
                        f"its output is in {log_path}")


def _train(plan_: Plan, ctx: Context) -> tuple[str, str | None, dict[str, float]]:
    import optuna

    from forewarn.training.pipeline import TrainConfig, run_training

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    req = plan_.request
    base = TrainConfig.quick_config(plan_.data_dir) if req.quick else TrainConfig(data=plan_.data_dir)
    cfg = replace(base, experiment=req.experiment, seed=req.seed, fairness_limit=req.fairness_limit, register=True)
    result = run_training(cfg, tracking_uri=ctx.tracking_uri, model_name=ctx.model_name)
    return result.run_id, result.version, result.metrics


def _prune(workdir: Path, keep: int, current: Path) -> None:
    """Keep the training sets of the last ``keep`` runs: each is a full copy of the features."""
    runs = sorted((p for p in (workdir / "runs").glob("*") if p.is_dir() and p != current), reverse=True)
    for old in runs[max(0, keep - 1):]:
        shutil.rmtree(old, ignore_errors=True)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"


def execute(plan_: Plan, ctx: Context, *, echo: Any = print, lock_lost: threading.Event | None = None) -> Result:
    """Run every step and record the outcome; never raises for a refused or failed run (see the record).
    ``lock_lost`` (the lock's heartbeat found it gone) stops the run before the gates: another run may
    hold the lock by then, and two promotions must not race."""
    from forewarn.features import FEATURE_SET_VERSION
    from forewarn.retraining import health
    from forewarn.training.promote import publish_audit, run_promotion

    req = plan_.request
    started = time.time()
    before = champion_facts(ctx.tracking_uri, ctx.model_name, ctx.alias)
    record: dict[str, Any] = {
        "type": records.RECORD_TYPE, "run_id": plan_.run_id, "reason": req.reason,
        "trigger": trigger_kind(req.reason), "actor": _actor(), "host": socket.gethostname(),
        "runner": req.runner, "started_at": records.now_iso(), "ended_at": None, "model": ctx.model_name,
        "alias": ctx.alias,
        "lake_dir": str(req.lake_dir) if req.lake_dir else None, "data_dir": str(plan_.data_dir),
        "data_range": None, "dataset_hash": None, "rows": None, "train_run_id": None, "candidate_version": None,
        "gates": {"limits": asdict(req.limits), "failures": [], "comparison": None, "notes": []},
        "decision": None, "reasons": [], "champion_before": before["version"] if before else None,
        "champion_after": before["version"] if before else None, "steps": [], "error": None,
        "tracking_uri": ctx.tracking_uri,
    }
    from forewarn.audit import actions as audit

    trail = audit.trail_at(ctx.state_dir / "audit" / "trail.jsonl", ctx.kafka_settings)
    audit.retraining(trail, audit.default_actor(), audit.RETRAINING_STARTED, record)
    log_path = plan_.run_dir / "steps.log"
    try:
        for step in plan_.steps:
            echo(f"[{step.name}] forewarn {' '.join(step.argv)}")
            t0 = time.time()
            entry: dict[str, Any] = {"name": step.name, "command": "forewarn " + " ".join(step.argv),
                                     "started_at": records.now_iso()}
            record["steps"].append(entry)
            if step.subprocess:
                _run_subprocess(step, log_path, ctx.env)
                if step.name == "build":
                    record.update(dataset_facts(plan_.data_dir))
            elif step.name == "train":
                record.update(dataset_facts(plan_.data_dir))
                run_id, version, metrics = _train(plan_, ctx)
                record["train_run_id"], record["candidate_version"] = run_id, version
                entry["metrics"] = {k: metrics[k] for k in ("holdout_f1", "holdout_pr_auc", "calibration_error",
                                                            "fairness_gap") if k in metrics}
                if version is None:
                    raise UserError("training registered no model version")
            else:
                if lock_lost is not None and lock_lost.is_set():
                    raise UserError("the retraining lock was lost during the run (Redis away longer than its "
                                    "TTL, or taken over): not promoting; the trigger will start another run")
                version = str(record["candidate_version"])
                entry["command"] = entry["command"].replace("<the version train registers>", version)
                outcome = run_promotion(
                    tracking_uri=ctx.tracking_uri, name=ctx.model_name, alias=ctx.alias, version=version,
                    limits=req.limits, audit_path=ctx.state_dir / "audit" / "promotions.jsonl",
                    kafka_settings=ctx.kafka_settings, feature_set_version=FEATURE_SET_VERSION)
                d = outcome.decision
                record["gates"].update(failures=list(d.reasons), comparison=d.comparison, notes=list(d.notes),
                                       candidate=asdict(outcome.candidate) if outcome.candidate else None,
                                       champion=asdict(outcome.champion) if outcome.champion else None)
                record["decision"], record["reasons"] = d.decision, list(d.reasons)
                record["champion_after"] = outcome.audit["champion_after"]
            entry.update(ended_at=records.now_iso(), seconds=round(time.time() - t0, 1), ok=True)
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded and alerted, like a refusal
        if record["steps"]:
            record["steps"][-1].update(ended_at=records.now_iso(), ok=False)
        record["decision"] = FAILED
        record["error"] = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    record["ended_at"] = records.now_iso()
    record["seconds"] = round(time.time() - started, 1)
    notes: list[str] = []
    record["notes"] = notes  # filled below: where the events went (also in the file's copy)
    if ctx.kafka_settings is not None:
        if record["decision"] in (REFUSED, FAILED):
            notes.append(health.publish_health(ctx.kafka_settings,
                                               health.retrain_health_event(record, active=True)))
        elif record["decision"] == PROMOTED:
            notes.append(health.publish_health(ctx.kafka_settings,
                                               health.retrain_health_event(record, active=False)))
        notes.append("audit record " + publish_audit(ctx.kafka_settings, record))
    path = records.audit_path(ctx.state_dir)
    records.append(path, record)
    notes.append("audit trail " + audit.retraining(trail, audit.default_actor(), audit.RETRAINING_FINISHED,
                                                   record).note)
    if plan_.request.data_dir is None:
        _prune(req.workdir, req.keep_runs, plan_.run_dir)
    return Result(record, path, notes)
