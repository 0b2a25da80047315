"""``forewarn train --quick`` and ``forewarn promote`` against the real MLflow server (and Kafka for audit).

The training set is built here the way ``forewarn etl build`` builds one: readings of pumps and CNC
spindles that degrade before each failure, features through ``compute_frame`` (the features service's
engine), labels through ``forewarn.etl.labels``, Parquet partitioned by machine type, and a manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from forewarn.assets import load_asset_config
from forewarn.etl.labels import events_by_machine, label
from forewarn.etl.spec import BuildSpec, Horizon
from forewarn.features import FEATURE_SET_VERSION, compute_frame, feature_names

HOUR_MS = 3_600_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
BASE = {"temperature": 60.0, "vibration": 3.0, "pressure": 10.0, "rotational_speed": 1500.0, "current": 50.0,
        "oil_temperature": 70.0, "torque": 40.0}
# How far each sensor moves at full degradation (as a share of its base), and which ones do.
EFFECT = {"temperature": 0.1, "vibration": 1.0, "current": 0.08}


def build_training_set(out: Path, *, machines_per_type: int = 12, hours: int = 48, interval_s: int = 600,
                       seed: int = 0, shuffle_labels: bool = False) -> Path:
    """A labelled training set in the layout of ``forewarn etl build --out out`` (horizon 2h, RUL cap 12h)."""
    config = load_asset_config("plant")
    rng = np.random.default_rng(seed)
    n = hours * 3600 // interval_s
    times = START_MS + np.arange(n, dtype=np.int64) * interval_s * 1000
    spec = BuildSpec(horizon=Horizon.parse("2h"), rul_cap=12.0)
    parts: dict[str, pd.DataFrame] = {}
    for type_name in ("pump", "cnc_spindle"):
        kind = config.machine_types[type_name]
        readings, events = [], []
        for i in range(machines_per_type):
            machine = f"{type_name}-{i:02d}"
            failures, t = [], rng.uniform(2, 8)
            while t < hours:
                failures.append(START_MS + int(t * HOUR_MS))
                t += rng.uniform(5, 10)
            following = np.searchsorted(np.asarray(failures, dtype=np.int64), times, side="left")
            next_failure = np.asarray([*failures, np.iinfo(np.int64).max // 2], dtype=np.float64)[following]
            # Each failure announces itself over its own time scale; one in five gives no warning at all.
            tau = np.r_[rng.uniform(1.0, 3.0, len(failures)) * (rng.random(len(failures)) > 0.2), 1.0][following]
            degradation = np.where(tau > 0, np.exp(-(next_failure - times) / np.maximum(tau, 1e-9) / HOUR_MS), 0.0)
            frame = pd.DataFrame({"machine_id": machine, "ts": times})
            for sensor in kind.sensor_names:
                level = BASE[sensor] * rng.uniform(0.85, 1.15)
                frame[sensor] = level * (1.0 + rng.normal(0.0, 0.05, n) + EFFECT.get(sensor, 0.0) * degradation)
            readings.append(frame)
            for f in failures:
                events += [(machine, "failure", f, None), (machine, "maintenance", f + 60_000, None)]
        frame = pd.concat(readings).sort_values(["ts", "machine_id"], kind="stable").reset_index(drop=True)
        features = compute_frame(frame, kind, config.allowed_lateness_ms)
        labels = label(frame, events_by_machine(pd.DataFrame(events, columns=["machine_id", "kind", "ts", "end_ts"])),
                       spec, int(times[-1]))
        part = pd.concat([frame[["machine_id", "ts"]], features[feature_names(kind)], labels], axis=1)
        if shuffle_labels:
            part["failure_within_horizon"] = rng.permutation(part["failure_within_horizon"].to_numpy())
        parts[type_name] = part
    digest = hashlib.sha256()
    for type_name, part in parts.items():
        folder = out / "dataset" / f"machine_type={type_name}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / "part-00000.parquet", index=False)
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    manifest = {
        "feature_set_version": FEATURE_SET_VERSION, "content_hash": "sha256:" + digest.hexdigest(),
        "build": spec.as_dict(), "label_definition": spec.label_definition(),
        "columns": {"features_by_machine_type": {t: feature_names(config.machine_types[t]) for t in parts}},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return out


# --- the tests ----------------------------------------------------------------------------------------

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from forewarn.cli.main import build_app  # noqa: E402


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    """A model name, experiment, audit topic and state dir of this module's own; the two training sets."""
    import uuid

    uid = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("train")
    prefix = f"test.{uid}."
    stack.ensure_topics([prefix + "audit"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOREWARN_MLFLOW__TRACKING_URI", stack.settings.mlflow.tracking_uri)
        mp.setenv("FOREWARN_MLFLOW__MODEL_NAME", f"test-train-{uid}")
        mp.setenv("FOREWARN_KAFKA__BOOTSTRAP_SERVERS", stack.settings.kafka.bootstrap_servers)
        mp.setenv("FOREWARN_KAFKA__TOPIC_PREFIX", prefix)
        mp.setenv("FOREWARN_STACK__STATE_DIR", str(root / "state"))
        mp.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        yield {
            "uid": uid, "model": f"test-train-{uid}", "experiment": f"test-train-{uid}", "prefix": prefix,
            "tracking": stack.settings.mlflow.tracking_uri, "kafka": stack.settings.kafka, "state": root / "state",
            "good": build_training_set(root / "good"),
            "noise": build_training_set(root / "noise", shuffle_labels=True),
        }


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _train(env, data: Path, *extra: str) -> tuple[int, str]:
    return _cli("train", "--data", str(data), "--quick", "--experiment", env["experiment"], "--seed", "0",
                "--fairness-limit", "0.5", *extra)


def _parent_runs(env) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(env["tracking"])
    experiment = client.get_experiment_by_name(env["experiment"])
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'train'", order_by=["attributes.start_time"])
    return runs


@pytest.fixture(scope="module")
def first(env):
    code, output = _train(env, env["good"])
    assert code == 0, output
    return _parent_runs(env)[-1]


def test_quick_train_logs_trials_and_registers_the_bundle(env, first) -> None:
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    from forewarn.features import FEATURE_SET_VERSION
    from forewarn.model_bundle import load_bundle

    client = MlflowClient(env["tracking"])
    children = client.search_runs([first.info.experiment_id], f"tags.mlflow.parentRunId = '{first.info.run_id}'")
    kinds = sorted((r.data.tags["kind"], r.data.tags["candidate"]) for r in children)
    assert kinds == [("best", "lightgbm")] + [("trial", "lightgbm")] * 3
    trial = next(r for r in children if r.data.tags["kind"] == "trial" and r.data.tags["state"] == "complete")
    assert {"learning_rate", "num_leaves"} <= set(trial.data.params) and "cv_pr_auc" in trial.data.metrics
    best = next(r for r in children if r.data.tags["kind"] == "best")
    artifacts = {a.path for a in client.list_artifacts(best.info.run_id, "plots")}
    assert artifacts == {"plots/pr_curve.png", "plots/calibration_curve.png", "plots/feature_importance.png"}
    parent_artifacts = {a.path for a in client.list_artifacts(first.info.run_id)}
    assert {"model_card.md", "holdout.json", "fairness.json", "candidates.json"} <= parent_artifacts
    metrics = first.data.metrics
    for key in ("holdout_accuracy", "holdout_precision", "holdout_recall", "holdout_f1", "holdout_pr_auc",
                "holdout_brier", "calibration_error", "holdout_lead_time_median_h", "fairness_gap", "rul_rmse",
                "rul_nasa_score"):
        assert key in metrics, key
    assert first.data.tags["fairness_gate"] in ("pass", "fail")

    (version,) = client.search_model_versions(f"name='{env['model']}'")
    assert version.run_id == first.info.run_id
    meta = get_model_info(f"models:/{env['model']}/{version.version}").metadata
    assert meta["forewarn_bundle"] == 1 and meta["horizon"] == "2h"
    assert meta["feature_set_version"] == FEATURE_SET_VERSION
    assert all(a <= b for a, b in zip(meta["calibration"]["prob"], meta["calibration"]["prob"][1:], strict=False))
    assert meta["rul_model_uri"]
    tags = version.tags
    assert float(tags["holdout_f1"]) == pytest.approx(metrics["holdout_f1"])
    for key in ("holdout_pr_auc", "holdout_brier", "fairness_gap", "calibration_error", "data_hash",
                "decision_threshold"):
        assert key in tags, key
    assert tags["data_hash"].startswith("sha256:")

    bundle = load_bundle(env["tracking"], env["model"], version.version)
    assert "torque__1m__mean" in bundle.feature_names and "pressure__1m__mean" in bundle.feature_names
    assert bundle.rul_booster is not None and bundle.calibration is not None


def _audit(env) -> list[dict]:
    lines = (env["state"] / "audit" / "promotions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _sent(env) -> list[dict]:
    from forewarn import kafka

    settings = env["kafka"].model_copy(update={"topic_prefix": env["prefix"]})
    values = [json.loads(m.value()) for m in kafka.read_all(settings, env["prefix"] + "audit", timeout_s=20)]
    return [v for v in values if v.get("type") == "model.promotion"]  # the audit trail's records share the topic


def _promote() -> tuple[int, str]:
    return _cli("promote", "--min-f1", "0.5", "--max-fairness-gap", "0.5", "--max-calibration-error", "0.2")


def _latest(env) -> str:
    from mlflow import MlflowClient

    return str(max(int(v.version) for v in MlflowClient(env["tracking"]).search_model_versions(
        f"name='{env['model']}'")))


@pytest.fixture(scope="module")
def champion(env, first) -> str:
    code, output = _promote()
    assert code == 0, output
    return _latest(env)


def test_promote_sets_the_champion_and_records_it(env, champion) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(env["tracking"])
    assert client.get_model_version_by_alias(env["model"], "champion").version == champion
    assert client.get_model_version(env["model"], champion).tags["promotion.decision"] == "promoted"
    record = next(r for r in _audit(env) if r["version"] == champion)
    assert record["decision"] == "promoted" and record["champion_before"] is None
    assert any(r["version"] == champion and r["decision"] == "promoted" for r in _sent(env))


def test_a_worse_candidate_is_refused_with_reasons(env, champion) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(env["tracking"])
    code, output = _train(env, env["noise"])  # labels shuffled: nothing to learn
    assert code == 0, output
    worse = _latest(env)
    code, output = _promote()
    assert code == 1, output
    assert "refused because holdout F1" in output and "is below the floor 0.5000" in output
    assert client.get_model_version_by_alias(env["model"], "champion").version == champion
    assert client.get_model_version(env["model"], worse).tags["promotion.decision"] == "refused"
    record = _audit(env)[-1]
    assert record["version"] == worse and record["decision"] == "refused"
    assert record["champion_before"] == champion and record["reasons"]
    assert record["champion"]["basis"] == "rescored on the candidate's holdout"
    assert any(r["version"] == worse and r["decision"] == "refused" for r in _sent(env))


def test_same_seed_gives_the_same_metrics_and_no_promotion_over_itself(env, first, champion) -> None:
    code, output = _train(env, env["good"])
    assert code == 0, output
    again = _parent_runs(env)[-1]
    assert again.info.run_id != first.info.run_id
    assert again.data.metrics == first.data.metrics
    assert again.data.tags["data_hash"] == first.data.tags["data_hash"]
    code, output = _promote()
    assert code == 1, output
    assert "does not beat the champion" in output
    record = _audit(env)[-1]
    assert record["candidate"]["f1"] == record["champion"]["f1"], "both re-scored on the same holdout rows"
