"""The whole training chain on simulated data, through the ``forewarn`` commands a user types, in the order
``forewarn demo`` strings them together (src/forewarn/demo.py ``train_first_model``):

    simulate --to kafka -> etl stream --once -> etl build -> train --quick -> promote

on the real stack, under a topic prefix, model name, experiment and state folder of this test's own. Then
the chain's results are checked end to end: every simulated reading and ground-truth event reached the lake
and the training set's manifest; the experiment holds the training run with its trials and model card; the
registered version is that run's, trained on that data version, and the ``champion`` alias points at it.

The narrower tests cover each step's edge cases (test_etl_lake_stream.py: exactly-once lake, labels;
test_train_promote.py: trials, bundle, gates and refusals); this one checks that the steps fit together.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from forewarn import kafka, topics

# A fleet small enough for a slow host (about 46k readings) with enough failures (seeded: about 70) for
# grouped, time-aware folds. Fixed start and seeds: the same data, model and metrics on every run.
MACHINES = 20
SIMULATE = ["-n", str(MACHINES), "--duration", "16d", "--interval", "10m", "--degrading-fraction", "0.99",
            "--seed", "7", "--start", "2026-01-01T00:00:00Z", "--no-progress"]
HORIZON = "24h"
# The holdout of such a fleet holds a handful of failures, spread over three machine types, so the
# per-type recall gap is noise (test_train_promote.py checks that gate). The F1 floor stays above what a
# constant "always failing" model scores on this holdout (about 0.23), and calibration must be sane.
PROMOTE_GATES = ["--min-f1", "0.3", "--max-fairness-gap", "1.0", "--max-calibration-error", "0.25"]
QUICK_TRIALS = 3  # TrainConfig.quick_config


def forewarn(env: dict[str, str], cwd: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``forewarn ARGS`` as demo.py runs it (``python -m forewarn.cli``); fails the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "forewarn.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (f"forewarn {' '.join(args)} exited {done.returncode}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def summary_rows(text: str) -> dict[str, str]:
    """The two-column rows of the simulator's summary table ('readings sent' -> '45,984')."""
    rows = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\W*([a-z][a-z_ :]*?)\s+[│|]\s+(\S.*?)\s+[│|]\W*", line.strip())
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def as_int(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_simulated_history_to_a_promoted_champion(stack, uid, tmp_path) -> None:
    from forewarn.stack.manager import LocalStack

    assert isinstance(stack, LocalStack)
    prefix = f"test.chain.{uid}."
    model, experiment = f"test-chain-{uid}", f"test-chain-{uid}"
    lake_dir, training, state = tmp_path / "lake", tmp_path / "training", tmp_path / "state"
    env = {**os.environ,
           "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka.bootstrap_servers,
           "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
           "FOREWARN_MLFLOW__TRACKING_URI": stack.settings.mlflow.tracking_uri,
           "FOREWARN_MLFLOW__MODEL_NAME": model,
           "FOREWARN_STACK__STATE_DIR": str(state),
           "FOREWARN_ASSET_CONFIG": "plant",
           "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
           "NO_COLOR": "1", "COLUMNS": "120"}
    settings = stack.settings.kafka.model_copy(update={"topic_prefix": prefix})
    names = [settings.topic(t) for t in topics.ALL]
    stack.ensure_topics(names)  # as demo.py does for its history prefix
    try:
        simulated = forewarn(env, tmp_path, "simulate", "--to", "kafka", *SIMULATE, timeout=180)
        streamed = forewarn(env, tmp_path, "etl", "stream", "--once", "--lake", str(lake_dir), timeout=420)
        forewarn(env, tmp_path, "etl", "build", "--lake", str(lake_dir), "--out", str(training),
                 "--horizon", HORIZON, timeout=600)
        trained = forewarn(env, tmp_path, "train", "--data", str(training), "--quick", "--seed", "7",
                           "--experiment", experiment, timeout=420)
        promoted = forewarn(env, tmp_path, "promote", *PROMOTE_GATES, timeout=180)

        manifest = json.loads((training / "manifest.json").read_text())
        lake_and_training_set_hold_everything_simulated(settings, simulated.stderr, streamed.stdout, manifest)
    finally:
        admin = kafka.admin(settings)  # kept referenced until the deletions are done
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=60)  # about 46k readings: not left behind in the broker

    run_id = experiment_holds_the_run_its_trials_and_card(stack.settings.mlflow.tracking_uri, experiment,
                                                          manifest, tmp_path)
    assert f"run {run_id} (experiment {experiment}); registered {model} version 1" in trained.stdout, \
        trained.stdout
    champion_is_that_runs_version(stack.settings.mlflow.tracking_uri, model, run_id, manifest)
    assert f"{model} version 1: promoted" in promoted.stdout and "champion is now version 1" in promoted.stdout, \
        promoted.stdout + promoted.stderr
    audit = [json.loads(line) for line in (state / "audit" / "promotions.jsonl").read_text().splitlines()]
    assert [(r["version"], r["decision"], r["champion_before"]) for r in audit] == [("1", "promoted", None)]


def lake_and_training_set_hold_everything_simulated(settings, simulator_log: str, stream_log: str,
                                                    manifest: dict) -> None:
    """Simulator summary == what Kafka holds == what the lake and the training set's manifest counted."""
    summary = summary_rows(simulator_log)
    assert "readings sent" in summary, simulator_log
    sent = as_int(summary["readings sent"])
    failures, maintenance = as_int(summary["failures"]), as_int(summary["maintenance"])
    assert summary["machines"] == f"{MACHINES} of {MACHINES}"

    readings_topic, truth_topic = settings.topic(topics.SENSOR_READINGS), settings.topic(topics.GROUND_TRUTH)
    assert kafka.count_readings(settings, readings_topic) == sent
    truth = [json.loads(m.value()) for m in kafka.read_all(settings, truth_topic)]
    kinds = [event["kind"] for event in truth]
    assert kinds.count("failure") == failures >= 20 and kinds.count("maintenance") == maintenance

    # etl stream --once reads every Kafka record (readings travel as envelopes of many readings each).
    records = {name: int(n) for name, n in re.findall(r"(\w+): (\d+) Kafka records", stream_log)}
    assert records["readings"] == kafka.message_count(settings, readings_topic) > 0, stream_log
    assert records["ground_truth"] == len(truth), stream_log

    rows = manifest["rows"]
    assert rows["lake_rows"] == rows["unique_records"] == sent, rows  # nothing lost or duplicated
    assert sum(rows["by_status"].values()) == sent and rows["by_status"].get("accepted", 0) > 0.9 * sent, rows
    assert rows["training"] == rows["by_status"]["accepted"] == sum(rows["labels"].values()), rows
    assert rows["events"] == {"failure": failures, "maintenance": maintenance}, rows
    assert rows["machines"] == MACHINES and set(rows["labels_by_machine_type"]) == {"pump", "compressor",
                                                                                    "cnc_spindle"}, rows
    assert rows["labels"]["1"] > 0 and rows["labels"]["0"] > rows["labels"]["1"], rows
    assert rows["label_sources"]["failure"] == rows["labels"]["1"], rows  # positives come from the failures
    assert manifest["label_definition"]["horizon"] == HORIZON and manifest["content_hash"].startswith("sha256:")


def experiment_holds_the_run_its_trials_and_card(tracking_uri: str, experiment: str, manifest: dict,
                                                 tmp_path: Path) -> str:
    """One training run, on this training set, with its trials and best model nested under it, metrics
    that show skill, and a model card; returns the run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    runs = client.search_runs([found.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "train"]
    run_id = parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["data_hash"] == manifest["content_hash"]  # trained on what etl build wrote
    assert parent.data.tags["horizon"] == HORIZON and parent.data.tags["quick"] == "True"

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run_id]
    assert len(children) == len(runs) - 1, "every other run of the experiment is nested under the training run"
    kinds = sorted((r.data.tags["kind"], r.data.tags["candidate"]) for r in children)
    assert kinds == [("best", "lightgbm")] + [("trial", "lightgbm")] * QUICK_TRIALS
    complete = [r for r in children if r.data.tags["kind"] == "trial" and r.data.tags["state"] == "complete"]
    assert complete and all(0.0 <= r.data.metrics["cv_pr_auc"] <= 1.0 for r in complete)

    m = parent.data.metrics
    for key in ("holdout_f1", "holdout_precision", "holdout_recall", "holdout_pr_auc", "calibration_error"):
        assert 0.0 <= m[key] <= 1.0, (key, m.get(key))
    assert m["holdout_f1"] > 0 and m["holdout_failures"] >= 1
    # Skill, not luck: a model that learned nothing scores the holdout's positive rate as PR-AUC.
    assert m["holdout_pr_auc"] > 2 * m["holdout_positives"] / m["holdout_rows"], m

    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model_card.md", "holdout.json", "fairness.json", "candidates.json"} <= artifacts, artifacts
    card = Path(client.download_artifacts(run_id, "model_card.md", str(tmp_path))).read_text()
    assert f"training run `{run_id}`" in card and manifest["content_hash"] in card
    assert f"PR-AUC {m['holdout_pr_auc']:.4f}" in card
    return run_id


def champion_is_that_runs_version(tracking_uri: str, model: str, run_id: str, manifest: dict) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    (version,) = client.search_model_versions(f"name='{model}'")
    assert version.run_id == run_id and version.version == "1"
    assert version.tags["data_hash"] == manifest["content_hash"]
    assert version.tags["promotion.decision"] == "promoted"
    assert client.get_model_version_by_alias(model, "champion").version == version.version
