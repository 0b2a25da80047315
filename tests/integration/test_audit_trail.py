"""The audit trail on a real run: a training set, ``forewarn train --quick`` (real MLflow), ``forewarn
promote``, an operator's ack through the alerter's service; ``forewarn audit verify`` passes, matches the
Kafka ``audit`` topic, and fails naming the record on an edited, a deleted and a swapped copy;
``forewarn audit trace`` walks the alert back to the data set.

The training set is built with pandas (``build_training_set``, as test_retrain does) and recorded with the
same call ``etl build`` makes after its manifest (``actions.dataset_built``); a Spark build would add a
minute.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from tests.integration.test_train_promote import build_training_set
from typer.testing import CliRunner

from forewarn.cli.main import build_app

ACTOR = "auditor-test"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    """One real run, every action on the trail: build, train (+ register), promote (+ alias), ack."""
    from forewarn.alerting.changes import ScoreInput
    from forewarn.alerting.events import FeedbackRequest
    from forewarn.alerting.policy import Policy, PolicyBook
    from forewarn.audit import actions
    from forewarn.schemas import RiskScore
    from forewarn.services.alerter.adapters.audit_log import TrailAuditLog
    from forewarn.services.alerter.adapters.memory import (
        InMemoryAlertStore,
        InMemoryDeliveryQueue,
        InMemoryPublisher,
    )
    from forewarn.services.alerter.metrics import AlerterMetrics
    from forewarn.services.alerter.service import AlertService, Topics

    uid = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("audit")
    prefix = f"test.{uid}."
    stack.ensure_topics([prefix + "alerts"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOREWARN_MLFLOW__TRACKING_URI", stack.settings.mlflow.tracking_uri)
        mp.setenv("FOREWARN_MLFLOW__MODEL_NAME", f"test-audit-{uid}")
        mp.setenv("FOREWARN_KAFKA__BOOTSTRAP_SERVERS", stack.settings.kafka.bootstrap_servers)
        mp.setenv("FOREWARN_KAFKA__TOPIC_PREFIX", prefix)
        mp.setenv("FOREWARN_STACK__STATE_DIR", str(root / "state"))
        mp.setenv("FOREWARN_ACTOR", ACTOR)
        mp.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        code, output = _cli("audit", "init-topic")
        assert code == 0 and f"created topic '{prefix}audit'" in output, output
        data = build_training_set(root / "set", machines_per_type=6, hours=24)
        manifest = json.loads((data / "manifest.json").read_text())
        built = actions.dataset_built(actions.default_trail(), actions.default_actor(), manifest=manifest,
                                      out_dir=data, lake_dir=None)
        assert built.sent, built.note
        code, output = _cli("train", "--data", str(data), "--quick", "--experiment", f"test-audit-{uid}", "--seed",
                            "0", "--fairness-limit", "0.5")
        assert code == 0, output
        code, output = _cli("promote", "--min-f1", "0.0", "--max-fairness-gap", "1.0",
                            "--max-calibration-error", "1.0")
        assert code == 0, output
        assert "audit trail" in output and f"sent to Kafka topic '{prefix}audit'" in output, output
        # An operator acknowledges an alert of the champion through the alerter's service.
        service = AlertService(InMemoryAlertStore(), InMemoryPublisher(), InMemoryDeliveryQueue(),
                               PolicyBook(defaults=Policy(enter_p=0.8, exit_p=0.5, min_consecutive=3)),
                               Topics(scores="s", alerts="a", dead_letters="d", feedback="f"), (),
                               AlerterMetrics(CollectorRegistry()), audit=TrailAuditLog(actions.default_trail()))
        service.handle_scores([ScoreInput("s:0", i, RiskScore(
            machine_id="pump-01", machine_type="pump", ts=1_767_225_600_000 + i * 1000, p_failure=0.95,
            model_name=f"test-audit-{uid}", model_version="1")) for i in range(3)])
        (alert,) = service.list_alerts()
        service.feedback(alert.id, FeedbackRequest(kind="acknowledged", operator="ana", comment="on my way"))
        yield {"trail": root / "state" / "audit" / "trail.jsonl", "root": root, "alert": alert.id,
               "model": f"test-audit-{uid}", "hash": manifest["content_hash"], "kafka": stack.settings.kafka,
               "prefix": prefix}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_action_is_on_the_trail_and_it_verifies(run) -> None:
    records = _records(run["trail"])
    assert [r["action"] for r in records] == [
        "dataset.built", "training.run", "model.registered", "model.promoted", "model.alias_changed",
        "alert.acknowledged"]
    assert [r["actor"] for r in records] == [ACTOR] * 5 + ["ana"]
    assert records[0]["object"] == {"kind": "dataset", "id": run["hash"]}
    assert records[1]["details"]["data_hash"] == run["hash"]
    assert records[4]["details"] == {"model": run["model"], "alias": "champion", "from_version": None,
                                     "to_version": "1"}
    code, output = _cli("audit", "verify")
    assert code == 0 and "intact, 6 record(s), seq 1..6" in output and "6 confirmed on Kafka" in output, output
    code, output = _cli("audit", "verify", "--kafka")
    assert code == 0 and "matching the topic" in output, output
    code, output = _cli("audit", "show", "--last", "2")
    assert output.splitlines()[-1].split()[-2:] == ["alert", run["alert"]], output


def test_the_records_are_on_the_kafka_audit_topic(run) -> None:
    from forewarn.audit.kafka_io import read_copies, topic_config_problems

    settings = run["kafka"].model_copy(update={"topic_prefix": run["prefix"]})
    copies = read_copies(settings)
    assert sorted(c["hash"] for c in copies) == sorted(r["hash"] for r in _records(run["trail"]))
    assert topic_config_problems(settings) == []  # never compacted, never expired


@pytest.mark.parametrize(("tamper", "named"), [
    ("edit", "edited: record seq 4 (line 4"),
    ("delete", "removed: record(s) seq 3 between seq 2"),
    ("swap", "reordered: record seq 2 (line 3"),
])
def test_verify_fails_naming_the_record(run, tamper: str, named: str) -> None:
    copy = run["root"] / f"{tamper}.jsonl"
    lines = run["trail"].read_text().splitlines()
    if tamper == "edit":
        lines[3] = lines[3].replace('"decision":"promoted"', '"decision":"refused"').replace(
            '"decision": "promoted"', '"decision": "refused"')
        assert lines[3] != run["trail"].read_text().splitlines()[3]
    elif tamper == "delete":
        del lines[2]
    else:
        lines[1], lines[2] = lines[2], lines[1]
    copy.write_text("\n".join(lines) + "\n")
    code, output = _cli("audit", "verify", "--file", str(copy))
    assert code == 1 and named in output and "1 problem(s)" in output, output
    # Against Kafka the copy also shows what it lost or changed.
    shutil.copy(copy, run["root"] / "again.jsonl")
    code, output = _cli("audit", "verify", "--file", str(run["root"] / "again.jsonl"), "--kafka")
    assert code == 1, output


def test_trace_walks_alert_to_data_set(run) -> None:
    code, output = _cli("audit", "trace", run["alert"], "--json")
    assert code == 0, output
    trace = json.loads(output)
    assert trace["model_version"]["version"] == "1" and trace["model_version"]["run_id"]
    assert trace["training_run"]["run_id"] == trace["model_version"]["run_id"]
    assert trace["training_run"]["actor"] == ACTOR
    assert trace["dataset"]["content_hash"] == run["hash"] and trace["dataset"]["action"] == "dataset.built"
    assert [(a["action"], a["actor"]) for a in trace["operator_actions"]] == [("alert.acknowledged", "ana")]
    assert [s["action"] for s in trace["model_history"]] == ["model.registered", "model.promoted",
                                                             "model.alias_changed"]
    code, text = _cli("audit", "trace", run["alert"])
    assert code == 0 and "-> training run" in text and f"-> data set {run['hash']}" in text, text
