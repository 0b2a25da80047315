"""The lake and the training set on the real broker and Spark: `etl stream` killed with -9 and restarted
loses and duplicates nothing; `etl build` labels a hand-made history correctly on a simulated plant,
writes a stable manifest, and turns operator feedback into labels in the next build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

from forewarn import kafka, topics
from forewarn.etl import lake, stream
from forewarn.etl.build import build
from forewarn.etl.spec import BuildSpec, Horizon
from forewarn.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000


@pytest.fixture(scope="module")
def spark():
    from forewarn.etl.jobs import session

    spark = session("test-etl-lake", with_kafka=True, shuffle_partitions=2)
    yield spark
    spark.stop()


@pytest.fixture
def prefixed(stack, uid) -> KafkaSettings:
    """Kafka settings whose topic prefix is this test's own, with the three lake topics created."""
    settings = stack.settings.kafka.model_copy(update={"topic_prefix": f"test.etl.{uid}."})
    stack.ensure_topics([settings.topic(t) for t in (topics.SENSOR_READINGS, topics.GROUND_TRUTH, topics.FEEDBACK)],
                        partitions=4)
    return settings


def produce(settings: KafkaSettings, topic: str, messages: list[dict]) -> None:
    producer = kafka.producer(settings)
    for message in messages:
        producer.produce(settings.topic(topic), key=message["machine_id"], value=orjson.dumps(message))
    assert producer.flush(30) == 0


def reading(machine_id: str, machine_type: str, ts: int, value: float) -> dict:
    return {"machine_id": machine_id, "machine_type": machine_type, "ts": ts,
            "values": {"temperature": value, "vibration": 3.0, "current": 50.0}}


def committed(spark, lake_dir: Path, name: str) -> pd.DataFrame:
    return spark.read.parquet(str(lake_dir / name)).select("kafka_partition", "kafka_offset").toPandas()


def high_watermarks(settings: KafkaSettings, topic: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(settings, group_id=f"hw-{topic}")
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in metadata.partitions}
    finally:
        consumer.close()


def test_stream_killed_and_restarted_loses_and_duplicates_nothing(spark, prefixed, tmp_path) -> None:
    lake_dir = tmp_path / "lake"
    first = [reading(f"m{i % 12}", "pump", START_MS + i * 1000, 50.0) for i in range(3000)]
    produce(prefixed, topics.SENSOR_READINGS, first)
    produce(prefixed, topics.GROUND_TRUTH, [{"machine_id": "m1", "machine_type": "pump", "ts": START_MS + k,
                                             "kind": "maintenance", "mode": "scheduled"} for k in range(7)])
    env = {**os.environ, "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": prefixed.bootstrap_servers,
           "FOREWARN_KAFKA__TOPIC_PREFIX": prefixed.topic_prefix}
    log = (tmp_path / "stream.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "forewarn.cli", "etl", "stream", "--lake", str(lake_dir), "--interval", "1",
         "--max-offsets-per-trigger", "400"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    commits = lake_dir / lake.READINGS / "_spark_metadata"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if commits.is_dir() and len([p for p in commits.iterdir() if p.name.isdigit()]) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the JVM too: no chance to finish the batch in flight
        proc.wait(30)
    before = committed(spark, lake_dir, lake.READINGS)
    assert 0 < len(before) <= len(first)

    produce(prefixed, topics.SENSOR_READINGS, [reading(f"m{i % 12}", "pump", START_MS + i * 1000, 51.0)
                                               for i in range(3000, 4000)])
    plan = stream.plan_for(prefixed, lake_dir, None, interval_s=1.0)
    report = stream.run(spark, plan, prefixed, "once")
    assert report.skipped == []

    after = committed(spark, lake_dir, lake.READINGS)
    expected = {(p, o) for p, end in high_watermarks(prefixed, prefixed.topic(topics.SENSOR_READINGS)).items()
                for o in range(end)}
    assert len(expected) == 4000
    assert len(after) == 4000 and set(zip(after["kafka_partition"], after["kafka_offset"], strict=True)) == expected
    assert len(committed(spark, lake_dir, lake.GROUND_TRUTH)) == 7

    stream.run(spark, plan, prefixed, "once")  # nothing new: nothing written twice
    assert len(committed(spark, lake_dir, lake.READINGS)) == 4000
    print(f"killed after {len(before)} committed rows; after restart {len(after)} rows, all offsets exactly once")


def test_grain_keeps_the_last_reading_of_each_machine_and_interval(spark) -> None:
    from forewarn.etl.build import to_grain

    frame = spark.createDataFrame(
        [("a", 0, 0), ("a", 59_000, 1), ("a", 30_000, 2), ("a", 60_000, 3), ("b", 10_000, 0)],
        "machine_id STRING, ts BIGINT, arrival BIGINT")
    rows = sorted(tuple(r) for r in to_grain(frame, 60_000).collect())
    assert rows == [("a", 59_000, 1, 3), ("a", 60_000, 3, 1), ("b", 10_000, 0, 1)]


# -- the training set --------------------------------------------------------------------------------------

HORIZON = "1h"


def simulate(settings: KafkaSettings) -> None:
    env = {**os.environ, "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "FOREWARN_KAFKA__TOPIC_PREFIX": settings.topic_prefix}
    done = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "simulate", "-n", "4", "--duration", "12h", "--interval", "5m",
         "--seed", "11", "--start", "2026-01-01T00:00:00Z", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr


def hand_made(settings: KafkaSettings) -> None:
    """hand-1 (pump) fails at 06:00 and is repaired at 08:00; hand-2 (compressor) has no ground truth."""
    every = range(0, 12 * 60 + 1, 5)
    produce(settings, topics.SENSOR_READINGS,
            [reading("hand-1", "pump", START_MS + m * MIN, 40.0 + m / 10) for m in every]
            + [reading("hand-2", "compressor", START_MS + m * MIN, 60.0) for m in every])
    produce(settings, topics.GROUND_TRUTH, [
        {"machine_id": "hand-1", "machine_type": "pump", "ts": START_MS + 360 * MIN, "kind": "failure", "mode": "x"},
        {"machine_id": "hand-1", "machine_type": "pump", "ts": START_MS + 480 * MIN, "kind": "maintenance",
         "mode": "repair"},
    ])


def feedback(kind: str, window: tuple[int, int], failure_minute: int | None = None) -> dict:
    """A feedback event as services/alerter/events.py:FeedbackEvent writes it."""
    return {
        "event_id": f"alert-{kind}.3.feedback", "kind": kind, "alert_id": f"alert-{kind}", "dedup_key": "hand-2",
        "machine_id": "hand-2", "machine_type": "compressor", "site": None,
        "failure_ts": None if failure_minute is None else START_MS + failure_minute * MIN,
        "failure_mode": "air_leak" if failure_minute is not None else None,
        "alert_window": {"start_ts": START_MS + window[0] * MIN, "end_ts": START_MS + window[1] * MIN},
        "alert_state": "resolved", "comment": None, "operator": "ops", "received_at": START_MS + 13 * 60 * MIN,
    }


def machine_labels(out_dir: Path, machine_id: str) -> pd.DataFrame:
    frame = pd.read_parquet(out_dir / "dataset", filters=[("machine_id", "==", machine_id)])
    frame["minute"] = (frame["ts"] - START_MS) // MIN
    return frame.sort_values("minute").set_index("minute")


def label_at(frame: pd.DataFrame, minute: int) -> int | None:
    value = frame.loc[minute, "failure_within_horizon"]
    return None if pd.isna(value) else int(value)


def test_build_labels_a_hand_made_history_and_its_manifest_is_stable(spark, prefixed, tmp_path) -> None:
    lake_dir = tmp_path / "lake"
    simulate(prefixed)
    hand_made(prefixed)
    plan = stream.plan_for(prefixed, lake_dir, None)
    stream.run(spark, plan, prefixed, "once")
    spec = BuildSpec(config="plant", horizon=Horizon.parse(HORIZON), rul_cap=4.0)

    first = build(spark, lake_dir, tmp_path / "a", spec)
    hand = machine_labels(tmp_path / "a", "hand-1")
    positive = sorted(hand.index[hand["failure_within_horizon"] == 1])
    assert positive == list(range(300, 361, 5))  # within 1 h before the failure at 06:00
    assert label_at(hand, 295) == 0 and hand.loc[330, "label_source"] == "failure"
    assert hand.loc[300, "rul"] == pytest.approx(1.0) and hand.loc[0, "rul"] == 4.0
    assert label_at(hand, 400) == 0 and hand.loc[400, "label_source"] == "maintenance"  # down until repair
    assert label_at(hand, 480) == 0 and hand.loc[480, "label_source"] == "no_failure"  # a new life
    assert label_at(hand, 700) is None  # less than the horizon observed before the data ends: censored

    rows = first.manifest["rows"]
    assert rows["training"] == rows["by_status"]["accepted"] > 2 * 145 + 400  # machines under repair are silent
    assert rows["events"]["failure"] >= 1 and rows["events"]["maintenance"] >= 1
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["feature_set_version"] == "1" and manifest["label_definition"]["horizon"] == HORIZON
    assert manifest["content_hash"].startswith("sha256:") and manifest["config_hash"].startswith("sha256:")

    dataset = pd.read_parquet(first.dataset, columns=["machine_type", "norm__temperature", "condition_id"])
    for _, group in dataset.groupby("machine_type", observed=True):  # z-scores per type (no condition keys)
        assert group["norm__temperature"].mean() == pytest.approx(0.0, abs=1e-9)
        assert group["norm__temperature"].std(ddof=0) == pytest.approx(1.0, abs=1e-6)
    assert set(dataset["condition_id"]) == {0}
    eda_is_logged_to_mlflow(tmp_path / "a", tmp_path / "eda.html")

    again = build(spark, lake_dir, tmp_path / "b", spec)
    assert again.manifest["content_hash"] == first.manifest["content_hash"]
    assert again.manifest["config_hash"] == first.manifest["config_hash"]
    assert again.manifest["rows"] == first.manifest["rows"]

    # Operators report on hand-2: a confirmed failure at 04:00, a false alarm from 11:20 to the end.
    produce(prefixed, topics.FEEDBACK, [feedback("confirmed_failure", (200, 230), failure_minute=240),
                                        feedback("false_alarm", (680, 720))])
    before = machine_labels(tmp_path / "a", "hand-2")
    assert set(before.loc[180:240, "label_source"]) == {"no_failure"}
    assert label_at(before, 700) is None
    stream.run(spark, plan, prefixed, "once")
    after_build = build(spark, lake_dir, tmp_path / "c", spec)
    after = machine_labels(tmp_path / "c", "hand-2")
    assert sorted(after.index[after["failure_within_horizon"] == 1]) == list(range(180, 241, 5))
    assert set(after.loc[180:240, "label_source"]) == {"confirmed_failure"}
    assert [label_at(after, m) for m in range(680, 721, 5)] == [0] * 9
    assert set(after.loc[680:720, "label_source"]) == {"false_alarm"}
    assert after_build.manifest["rows"]["events"]["confirmed_failure"] == 1
    assert after_build.manifest["content_hash"] != first.manifest["content_hash"]
    assert after_build.manifest["config_hash"] == first.manifest["config_hash"]


def eda_is_logged_to_mlflow(training: Path, report: Path) -> None:
    import re

    import mlflow
    from typer.testing import CliRunner

    from forewarn.cli.main import build_app
    from forewarn.settings import ForewarnSettings

    result = CliRunner().invoke(build_app(), ["eda", "--data", str(training), "--out", str(report)])
    assert result.exit_code == 0, result.output
    run_id = re.search(r"run ([0-9a-f]{32})", result.output).group(1)
    client = mlflow.MlflowClient(tracking_uri=ForewarnSettings().mlflow.tracking_uri)
    assert [a.path for a in client.list_artifacts(run_id, "eda")] == [f"eda/{report.name}"]
    assert report.read_text().count("data:image/png;base64,") == 5
