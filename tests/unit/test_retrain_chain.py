"""The retraining run without the stack: its plan, the facts it reads from a training set, the record
and history, the model-health event, and the CLI's --dry-run and --history."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from forewarn.cli.main import build_app
from forewarn.errors import UserError
from forewarn.retraining import record as records
from forewarn.retraining.chain import RetrainRequest, dataset_facts, gate_descriptions, plan
from forewarn.retraining.health import retrain_health_event
from forewarn.schemas import ModelHealthEvent
from forewarn.training.promote import GateLimits

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z


def training_set(folder: Path) -> Path:
    for machine_type, offset in (("pump", 0), ("cnc_spindle", 3_600_000)):
        part = folder / "dataset" / f"machine_type={machine_type}"
        part.mkdir(parents=True)
        pd.DataFrame({"machine_id": ["m1", "m2"], "ts": [START_MS + offset, START_MS + 2 * offset + 60_000],
                      "x": [1.0, 2.0]}).to_parquet(part / "part-00000.parquet", index=False)
    (folder / "manifest.json").write_text(json.dumps({"content_hash": "sha256:abc", "rows": {"training": 4}}))
    return folder


def test_plan_from_the_lake_with_catch_up(tmp_path: Path) -> None:
    request = RetrainRequest(reason="decay: x", workdir=tmp_path / "w", lake_dir=tmp_path / "lake", catch_up=True,
                             horizon="12h", seed=3, quick=True, limits=GateLimits(0.6, 0.3, 0.15))
    p = plan(request, run_id="r1")
    assert p.data_dir == tmp_path / "w" / "runs" / "r1" / "training"
    assert [s.name for s in p.steps] == ["catch-up", "build", "train", "gates"]
    assert [s.subprocess for s in p.steps] == [True, True, False, False]
    lake, out = str(tmp_path / "lake"), str(p.data_dir)
    assert p.commands() == [
        f"forewarn etl stream --once --lake {lake}",
        f"forewarn etl build --lake {lake} --out {out} --horizon 12h",
        f"forewarn train --data {out} --seed 3 --experiment forewarn-retrain --fairness-limit 0.2 --quick",
        "forewarn promote --version <the version train registers> --min-f1 0.6 --max-fairness-gap 0.3 "
        "--max-calibration-error 0.15",
    ]
    assert "beats the champion, both re-scored on the candidate's most recent time-ordered holdout" in \
        gate_descriptions(request.limits)


def test_plan_from_an_existing_training_set_builds_nothing(tmp_path: Path) -> None:
    p = plan(RetrainRequest(reason="r", workdir=tmp_path, data_dir=tmp_path / "t", lake_dir=tmp_path / "lake"))
    assert [s.name for s in p.steps] == ["train", "gates"] and p.data_dir == tmp_path / "t"
    assert "--quick" not in p.steps[0].argv


def test_plan_needs_a_lake_or_a_training_set(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--lake DIR"):
        plan(RetrainRequest(reason="r", workdir=tmp_path))


def test_dataset_facts_read_the_hash_and_the_event_time_range(tmp_path: Path) -> None:
    facts = dataset_facts(training_set(tmp_path / "t"))
    assert facts["dataset_hash"] == "sha256:abc" and facts["rows"] == 4
    assert facts["data_range"] == {"min_ts": START_MS, "max_ts": START_MS + 7_260_000,
                                   "min_iso": "2026-01-01T00:00:00+00:00", "max_iso": "2026-01-01T02:01:00+00:00"}
    assert dataset_facts(tmp_path / "missing") == {"dataset_hash": None, "rows": None, "data_range": None}


def _record(**overrides: object) -> dict:
    base = {"type": records.RECORD_TYPE, "run_id": "r1", "reason": "sustained drift: 3 of the last 3 windows drifted",
            "trigger": "drift", "started_at": "2026-01-06T10:00:00+00:00", "decision": "refused",
            "reasons": ["holdout F1 0.4000 is below the floor 1.0100 (--min-f1)"], "candidate_version": "4",
            "champion_before": "3", "champion_after": "3", "dataset_hash": "sha256:0123456789abcdef",
            "data_range": {"min_ts": START_MS, "max_ts": START_MS + 60_000, "min_iso": "2026-01-01T00:00:00+00:00",
                           "max_iso": "2026-01-01T00:01:00+00:00"}, "model": "m", "error": None,
            "gates": {"failures": ["holdout F1 ..."]}, "train_run_id": "abc"}
    return {**base, **overrides}


def test_history_is_newest_first_and_skips_torn_lines(tmp_path: Path) -> None:
    path = records.audit_path(tmp_path)
    records.append(path, _record())
    records.append(path, _record(run_id="r2", started_at="2026-01-07T10:00:00+00:00", decision="promoted",
                                 reasons=[], champion_after="5", candidate_version="5"))
    with path.open("a") as handle:
        handle.write('{"type": "model.retraining", "run_id": "torn')
    history = records.read_history(path)
    assert [r["run_id"] for r in history] == ["r2", "r1"]
    rows = records.history_rows(history)
    assert rows[0]["decision"] == "promoted" and rows[0]["champion"] == "3 → 5"
    assert rows[1]["why not"].startswith("holdout F1 0.4000") and rows[1]["dataset"] == "0123456789a…"
    assert rows[1]["trigger"].startswith("drift: sustained drift") and rows[1]["started"] == "2026-01-06T10:00:00Z"
    assert records.read_history(tmp_path / "none.jsonl") == []


def test_a_refusal_is_an_active_retrain_refused_event_that_says_why() -> None:
    started_ms = 1_767_693_600_000  # the run's start, 2026-01-06T10:00Z: event time is the run's, not the data's
    event = retrain_health_event(_record(), active=True, now_ms=started_ms + 120_000)
    assert isinstance(event, ModelHealthEvent)
    assert event.condition == "retrain_refused" and event.active and event.scope == "all"
    assert event.model_name == "m" and event.model_version == "4" and event.value == 1.0
    assert "did not replace the champion (version 3)" in event.summary and "below the floor 1.0100" in event.summary
    assert (event.window_start_ts, event.window_end_ts, event.emitted_at) == (started_ms, started_ms + 120_000,
                                                                             started_ms + 120_000)
    assert event.details["data_range"]["min_ts"] == START_MS
    assert event.details["reasons"] == _record()["reasons"] and event.event_id == "retrain:r1:retrain_refused"
    ModelHealthEvent.model_validate_json(event.model_dump_json())


def test_a_failed_run_is_alerted_too_and_a_promotion_resolves() -> None:
    failed = retrain_health_event(_record(decision="failed", reasons=[], candidate_version=None, started_at=None,
                                          error="step build exited 1", data_range=None), active=True, now_ms=7)
    assert failed.active and "failed because the run failed: step build exited 1" in failed.summary
    assert failed.window_start_ts == failed.window_end_ts == 7
    resolved = retrain_health_event(_record(decision="promoted", reasons=[], champion_after="4"), active=False)
    assert not resolved.active and resolved.summary == "retraining promoted version 4 (was 3)"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FOREWARN_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FOREWARN_MLFLOW__TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def test_dry_run_prints_the_plan_and_changes_nothing(cli_env: Path) -> None:
    data = training_set(cli_env / "t")
    before = sorted(p.relative_to(cli_env) for p in cli_env.rglob("*"))
    result = CliRunner().invoke(build_app(), ["retrain", "--dry-run", "--data", str(data), "--min-f1", "0.7",
                                              "--reason", "new labels: 120 since the last training"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "dry run: nothing is changed" in out and "trigger: new labels: 120 since the last training" in out
    assert "current champion: unknown (MLflow at http://127.0.0.1:9 is not reachable" in out
    assert f"data: {data} (4 rows, 2026-01-01T00:00:00+00:00 to 2026-01-01T02:01:00+00:00, sha256:abc)" in out
    assert f"forewarn train --data {data} --seed 0" in out and "holdout F1 >= 0.7" in out
    assert sorted(p.relative_to(cli_env) for p in cli_env.rglob("*")) == before


def test_history_prints_the_records(cli_env: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(build_app(), ["retrain", "--history"])
    assert empty.exit_code == 0 and "no retraining runs recorded" in empty.output
    records.append(records.audit_path(cli_env / "state"), _record())
    result = runner.invoke(build_app(), ["retrain", "--history"])
    assert result.exit_code == 0, result.output
    assert "refused" in result.output and "3 → 3" in result.output and "2026-01-06T10:00:00Z" in result.output


def test_a_failing_step_is_recorded_as_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from forewarn.retraining import chain

    calls: list[list[str]] = []

    def run(argv: list[str], **_kwargs: object) -> SimpleNamespace:
        calls.append(argv)
        return SimpleNamespace(returncode=0 if "stream" in argv else 3)

    monkeypatch.setattr(chain.subprocess, "run", run)
    monkeypatch.setattr(chain, "champion_facts", lambda *_a: {"version": "7"})
    p = plan(RetrainRequest(reason="decay: x", workdir=tmp_path / "w", lake_dir=tmp_path / "lake", catch_up=True),
             run_id="r1")
    ctx = chain.Context(tracking_uri="http://127.0.0.1:9", model_name="m", alias="champion",
                        state_dir=tmp_path / "state", kafka_settings=None)
    result = chain.execute(p, ctx, echo=lambda _line: None)
    r = result.record
    assert [argv[3:5] for argv in calls] == [["etl", "stream"], ["etl", "build"]]
    assert r["decision"] == "failed" and "step build" in r["error"] and "exited 3" in r["error"]
    assert [(s["name"], s["ok"]) for s in r["steps"]] == [("catch-up", True), ("build", False)]
    assert r["champion_before"] == r["champion_after"] == "7" and r["trigger"] == "decay"
    assert records.read_history(result.audit_path)[0]["run_id"] == "r1"
    assert (p.run_dir / "steps.log").read_text().startswith(f"$ forewarn etl stream --once --lake {tmp_path}")


def test_a_run_that_lost_its_lock_does_not_promote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from forewarn.retraining import chain

    monkeypatch.setattr(chain, "champion_facts", lambda *_a: None)
    monkeypatch.setattr(chain, "_train", lambda *_a: ("run-1", "5", {"holdout_f1": 0.8}))
    lost = threading.Event()
    lost.set()
    p = plan(RetrainRequest(reason="r", workdir=tmp_path, data_dir=training_set(tmp_path / "t")), run_id="r1")
    ctx = chain.Context(tracking_uri="http://127.0.0.1:9", model_name="m", alias="champion",
                        state_dir=tmp_path / "state", kafka_settings=None)
    r = chain.execute(p, ctx, echo=lambda _line: None, lock_lost=lost).record
    assert r["decision"] == "failed" and "lock was lost" in r["error"]
    assert (r["train_run_id"], r["candidate_version"], r["dataset_hash"]) == ("run-1", "5", "sha256:abc")
    assert [(s["name"], s["ok"]) for s in r["steps"]] == [("train", True), ("gates", False)]
