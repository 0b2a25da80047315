"""``forewarn retrain`` on the real stack: the Redis lock, a passing challenger promoted and recorded, a
failing one refused with the champion kept and a ``retrain_refused`` model-health event on
``model.health``. From an existing training set (``--data``, built as test_train_promote.py builds one),
so no Spark; under a model name, topic prefix, Redis key prefix and state folder of this module's own.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from tests.integration.test_train_promote import build_training_set
from typer.testing import CliRunner

from forewarn.cli.main import build_app
from forewarn.retraining.lock import RetrainLock, lock_key

GATES = ["--min-f1", "0.5", "--max-fairness-gap", "0.5", "--max-calibration-error", "0.2"]
DRIFT = "sustained drift: 3 of the last 3 windows drifted"


# ---- the lock on real Redis ----------------------------------------------------------------------


@pytest.fixture
def redis_client(stack):
    import redis

    return redis.Redis.from_url(stack.settings.redis.url)


def test_lock_refuses_a_second_owner_is_taken_over_after_expiry_and_freed_only_by_its_owner(redis_client,
                                                                                             uid) -> None:
    key = lock_key(f"test-{uid}")
    first = RetrainLock(redis_client, key, "first", ttl_s=1.0)
    second = RetrainLock(redis_client, key, "second", ttl_s=1.0)
    try:
        assert first.acquire() and not second.acquire()
        assert not second.release() and first.holder() == "first"
        time.sleep(1.2)  # the first owner "died": no heartbeat, the TTL lapses
        assert second.acquire() and second.holder() == "second"
        assert not first.release() and not first.extend() and second.holder() == "second"
        assert second.release() and redis_client.get(key) is None
    finally:
        redis_client.delete(key)


def test_heartbeat_keeps_a_live_run_locked(redis_client, uid) -> None:
    key = lock_key(f"test-{uid}")
    live = RetrainLock(redis_client, key, "live", ttl_s=1.0)
    try:
        assert live.acquire()
        live.start_heartbeat(interval_s=0.2)
        time.sleep(2.0)
        assert live.holder() == "live" and not live.lost.is_set()
        assert not RetrainLock(redis_client, key, "other", ttl_s=1.0).acquire()
        assert live.release() and live.holder() is None
    finally:
        redis_client.delete(key)


# ---- the retraining chain ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    uid = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("retrain")
    prefix = f"test.retrain.{uid}."
    stack.ensure_topics([prefix + "audit", prefix + "model.health"])
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "FOREWARN_MLFLOW__TRACKING_URI": stack.settings.mlflow.tracking_uri,
            "FOREWARN_MLFLOW__MODEL_NAME": f"test-retrain-{uid}",
            "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka.bootstrap_servers,
            "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
            "FOREWARN_REDIS__URL": stack.settings.redis.url,
            "FOREWARN_REDIS__KEY_PREFIX": f"test-retrain-{uid}",
            "FOREWARN_STACK__STATE_DIR": str(root / "state"),
            "FOREWARN_RETRAIN__WORKDIR": str(root / "work"),
            "FOREWARN_RETRAIN__FAIRNESS_LIMIT": "0.5",
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
            "COLUMNS": "200",
        }.items():
            mp.setenv(name, value)
        yield {"uid": uid, "model": f"test-retrain-{uid}", "prefix": prefix, "state": root / "state",
               "tracking": stack.settings.mlflow.tracking_uri, "kafka": stack.settings.kafka,
               "redis_prefix": f"test-retrain-{uid}", "redis_url": stack.settings.redis.url,
               "data": build_training_set(root / "good")}


def _retrain(env, *extra: str) -> tuple[int, str]:
    args = ["retrain", "--data", str(env["data"]), "--quick", "--seed", "0", "--experiment",
            f"test-retrain-{env['uid']}", *extra]
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    return result.exit_code, result.output


def _records(env) -> list[dict]:
    path = env["state"] / "audit" / "retraining.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _topic(env, name: str) -> list[dict]:
    from forewarn import kafka

    settings = env["kafka"].model_copy(update={"topic_prefix": env["prefix"]})
    return [json.loads(m.value()) for m in kafka.read_all(settings, settings.topic(name), timeout_s=20)]


def _champion(env) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(env["tracking"]).get_model_version_by_alias(env["model"], "champion").version)
    except MlflowException:
        return None


@pytest.fixture(scope="module")
def promoted(env) -> dict:
    code, output = _retrain(env, "--reason", DRIFT, *GATES)
    assert code == 0, output
    assert "retraining" in output and ": promoted (candidate version 1)" in output, output
    return _records(env)[-1]


def test_a_passing_challenger_is_promoted_and_every_step_recorded(env, promoted) -> None:
    assert _champion(env) == "1"
    r = promoted
    assert (r["decision"], r["trigger"], r["reason"]) == ("promoted", "drift", DRIFT)
    assert r["candidate_version"] == "1" and r["champion_before"] is None and r["champion_after"] == "1"
    assert r["dataset_hash"].startswith("sha256:") and r["rows"] > 0 and r["train_run_id"]
    assert r["data_range"]["min_ts"] < r["data_range"]["max_ts"] and r["data_range"]["min_iso"].startswith("2026-01")
    assert [s["name"] for s in r["steps"]] == ["train", "gates"] and all(s["ok"] for s in r["steps"])
    assert "--version 1 --min-f1 0.5" in r["steps"][1]["command"]
    assert r["gates"]["limits"] == {"min_f1": 0.5, "max_fairness_gap": 0.5, "max_calibration_error": 0.2}
    assert r["gates"]["failures"] == [] and r["started_at"] <= r["ended_at"]
    audit = _topic(env, "audit")
    assert any(a.get("type") == "model.retraining" and a["run_id"] == r["run_id"] for a in audit)
    assert any(a.get("type") == "model.promotion" and a["version"] == "1" for a in audit)
    health = [h for h in _topic(env, "model.health") if h["details"]["run_id"] == r["run_id"]]
    assert [(h["condition"], h["active"]) for h in health] == [("retrain_refused", False)]


def test_a_failing_challenger_is_refused_the_champion_stays_and_it_is_alerted(env, promoted) -> None:
    code, output = _retrain(env, "--reason", "new labels: 120 since the last training", "--min-f1", "1.01",
                            "--max-fairness-gap", "0.5", "--max-calibration-error", "0.2")
    assert code == 1, output
    assert "refused because holdout F1" in output and "is below the floor 1.0100" in output
    assert "champion is still version 1" in output
    assert _champion(env) == "1"
    r = _records(env)[-1]
    assert (r["decision"], r["trigger"], r["candidate_version"]) == ("refused", "labels", "2")
    assert r["champion_before"] == r["champion_after"] == "1"
    assert any("below the floor 1.0100" in why for why in r["reasons"])
    health = [h for h in _topic(env, "model.health") if h["details"]["run_id"] == r["run_id"]]
    assert len(health) == 1
    from forewarn.schemas import ModelHealthEvent

    event = ModelHealthEvent.model_validate(health[0])
    assert event.condition == "retrain_refused" and event.active and event.model_name == env["model"]
    assert event.model_version == "2" and "below the floor 1.0100" in event.summary
    assert "did not replace the champion (version 1)" in event.summary
    import redis

    from forewarn.retraining.lock import read_last_run

    last = read_last_run(redis.Redis.from_url(env["redis_url"]), env["redis_prefix"])
    assert last is not None and (last["run_id"], last["decision"]) == (r["run_id"], "refused")

    result = CliRunner().invoke(build_app(), ["retrain", "--history"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    refused_at = next(i for i, line in enumerate(lines) if "refused" in line)
    promoted_at = next(i for i, line in enumerate(lines) if "promoted" in line)
    assert refused_at < promoted_at, "newest first"


def test_a_second_run_is_refused_while_one_holds_the_lock(env, promoted, stack) -> None:
    import redis

    client = redis.Redis.from_url(stack.settings.redis.url)
    holder = RetrainLock(client, lock_key(env["redis_prefix"]), "other-replica", ttl_s=60)
    assert holder.acquire()
    try:
        before = len(_records(env))
        result = CliRunner().invoke(build_app(), ["retrain", "--data", str(env["data"]), "--quick"])
        assert result.exit_code != 0
        assert "another retraining run holds the lock" in str(result.exception or "") + result.output
        assert "other-replica" in str(result.exception or "") + result.output
        assert len(_records(env)) == before, "nothing ran"
    finally:
        holder.release()


def test_dry_run_names_the_champion_and_changes_nothing(env, promoted) -> None:
    before = len(_records(env))
    result = CliRunner().invoke(build_app(), ["retrain", "--dry-run", "--data", str(env["data"])],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "current champion: {'version': '1'" in result.output
    assert len(_records(env)) == before and _champion(env) == "1"
