"""The local stack is real: Kafka, Redis and MLflow answer as their own clients expect; Prometheus and
Alertmanager run beside them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def test_status_reports_all_three_healthy(stack) -> None:
    state = stack.status_json()
    assert set(state) >= {"kafka", "redis", "mlflow", "prometheus", "alertmanager"}
    for name, item in state.items():
        assert item["healthy"] is True, name
        assert isinstance(item["pid"], int)
        assert item["address"]
        assert isinstance(item["rss_mb"], float) and item["rss_mb"] > 1, name


def test_status_json_from_the_command_line(stack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "stack", "status", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    state = json.loads(out)
    assert {name: item["healthy"] for name, item in state.items()} == {
        "kafka": True, "redis": True, "mlflow": True, "prometheus": True, "alertmanager": True
    }


def test_prometheus_scrapes_the_stack_and_loads_the_rules_folder(stack) -> None:
    import httpx

    prometheus = stack.components["prometheus"].address
    targets = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    health = {t["labels"]["job"]: t["health"] for t in targets["data"]["activeTargets"]
              if t["labels"]["job"] in ("prometheus", "alertmanager")}
    assert health == {"prometheus": "up", "alertmanager": "up"}
    alertmanagers = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()["data"]
    assert [a["url"] for a in alertmanagers["activeAlertmanagers"]] == [
        f"{stack.components['alertmanager'].address}/api/v2/alerts"
    ]
    loaded = httpx.get(f"{prometheus}/api/v1/status/config", timeout=5).json()["data"]["yaml"]
    assert str(stack.settings.stack.prometheus_rules_dir.resolve() / "*.yml") in loaded
    assert str(stack.settings.prometheus_targets_dir / "*.json") in loaded


def test_up_twice_is_harmless(stack) -> None:
    before = {name: item["pid"] for name, item in stack.status_json().items()}
    stack.up()
    after = {name: item["pid"] for name, item in stack.status_json().items()}
    assert before == after


def test_produce_and_consume_with_confluent_kafka(kafka_settings, topic_factory, uid) -> None:
    from forewarn import kafka

    topic = topic_factory("roundtrip", partitions=3)
    producer = kafka.producer(kafka_settings)
    sent = {f"{uid}-{i}": f"value-{i}" for i in range(300)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    consumer = kafka.consumer(kafka_settings, group_id=f"g-{uid}")
    consumer.subscribe([topic])
    received: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=1.0):
            assert message.error() is None, message.error()
            received[message.key().decode()] = message.value().decode()
    consumer.close()
    assert received == sent


def test_redis_round_trip(stack, uid) -> None:
    import redis

    url = stack.settings.redis.url
    client = redis.Redis.from_url(url)
    key = f"test:{uid}"
    client.hset(key, mapping={"a": "1.5", "b": "x"})
    client.expire(key, 60)
    assert client.hgetall(key) == {b"a": b"1.5", b"b": b"x"}
    client.delete(key)
    assert client.exists(key) == 0


FAUST_APP = """
import faust

app = faust.App(
    "{app_id}",
    broker="kafka://{bootstrap}",
    store="memory://",
    datadir="{datadir}",
    topic_partitions={partitions},
    web_enabled=False,
)
source = app.topic("{topic}", value_serializer="raw")

@app.agent(source)
async def collect(stream):
    async for value in stream:
        with open("{out}", "a") as handle:
            handle.write(value.decode() + "\\n")
"""


def test_faust_agent_consumes_from_our_broker(kafka_settings, topic_factory, uid, tmp_path: Path) -> None:
    from forewarn import kafka

    partitions = 2
    topic = topic_factory("faust", partitions=partitions)
    out = tmp_path / "received.txt"
    module = tmp_path / f"faustapp_{uid}.py"
    module.write_text(
        textwrap.dedent(FAUST_APP).format(
            app_id=f"test-faust-{uid}", bootstrap=kafka_settings.bootstrap_servers, datadir=tmp_path / "data",
            partitions=partitions, topic=topic, out=out,
        )
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", module.stem, "worker", "-l", "warn"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        producer = kafka.producer(kafka_settings)
        expected = {f"{uid}-{i}" for i in range(50)}
        for value in expected:
            producer.produce(topic, key=value, value=value)
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 90
        received: set[str] = set()
        while time.monotonic() < deadline and received != expected:
            if worker.poll() is not None:
                pytest.fail(f"faust worker exited: {worker.stdout.read().decode()[-3000:]}")
            received = set(out.read_text().split()) if out.exists() else set()
            time.sleep(0.5)
        assert received == expected
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_mlflow_registers_lightgbm_and_loads_champion(stack, uid, tmp_path: Path) -> None:
    import lightgbm as lgb
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    tracking = stack.settings.mlflow.tracking_uri
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(f"test-{uid}")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4))
    labels = (features[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                        lgb.Dataset(features, labels), num_boost_round=10)
    name = f"test-model-{uid}"
    with mlflow.start_run() as run:
        mlflow.log_param("rounds", 10)
        mlflow.log_metric("train_rows", 200)
        info = mlflow.lightgbm.log_model(booster, name="model", registered_model_name=name)
    client = MlflowClient(tracking)
    version = client.get_latest_versions(name)[0].version if not info.registered_model_version else \
        info.registered_model_version
    client.set_registered_model_alias(name, "champion", str(version))

    assert client.get_run(run.info.run_id).data.params["rounds"] == "10"
    assert client.get_model_version_by_alias(name, "champion").version == str(version)
    loaded = mlflow.lightgbm.load_model(f"models:/{name}@champion")
    np.testing.assert_allclose(loaded.predict(features), booster.predict(features))


def test_alertmanager_config_with_webhook_and_slack_passes_amtool(tmp_path: Path) -> None:
    import shutil

    import yaml

    from forewarn.stack import monitoring

    config = monitoring.alertmanager_config(webhook_url="http://127.0.0.1:9/alerts",
                                            slack_webhook_url="https://hooks.slack.com/services/T0/B0/x",
                                            slack_channel="#forewarn-oncall")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with prometheus-alertmanager: run 'make setup'"
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 receivers" in result.stdout, result.stdout
    routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", "alertname=LagGrowing"],
                            capture_output=True, text=True, timeout=30)
    assert routed.stdout.strip() == "forewarn", routed.stdout + routed.stderr
