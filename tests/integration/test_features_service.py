"""The features service on the real broker and Redis: it computes what the offline path computes, survives
kill -9 without skipping or double-counting a reading, and scales across workers of one group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import redis

from forewarn import kafka, topics
from forewarn.assets import load_asset_config
from forewarn.features import compute_frame
from forewarn.online_store import RedisFeatureStore
from forewarn.stack.process import free_port
from forewarn.vector_codec import decode

PARTITIONS = 4


def make_readings(machines: int, per_machine: int, seed: int) -> list[dict]:
    """Interleaved readings of pumps and compressors, with missing values, out-of-order and duplicates."""
    config = load_asset_config("plant")
    rng = np.random.default_rng(seed)
    types = ["pump", "compressor"]
    readings = []
    base = 1_767_225_600_000
    for step in range(per_machine):
        for m in range(machines):
            machine_type = types[m % 2]
            sensors = config.machine_type(machine_type).sensor_names
            ts = base + step * 1000 + int(rng.integers(0, 300))
            if step > 3 and rng.random() < 0.03:
                ts -= 2500  # out of order, within the plant's 30 s allowed lateness
            values = {s: round(float(rng.normal(50, 5)), 3) for s in sensors if rng.random() > 0.05}
            readings.append({"machine_id": f"m{m:03d}", "machine_type": machine_type, "ts": ts, "values": values})
            if rng.random() < 0.01:
                readings.append(dict(readings[-1]))  # exact duplicate
    return readings


def expected_features(readings: list[dict]) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, np.ndarray]]:
    """Offline: the same readings through compute_frame; per (machine, ts) and the last per machine."""
    config = load_asset_config("plant")
    per_reading: dict[tuple[str, int], np.ndarray] = {}
    last: dict[str, np.ndarray] = {}
    frame = pd.DataFrame(
        [{"machine_id": r["machine_id"], "machine_type": r["machine_type"], "ts": r["ts"], **r["values"]}
         for r in readings]
    )
    for machine_type, group in frame.groupby("machine_type", sort=False):
        sensors = config.machine_type(machine_type).sensor_names
        group = group.reindex(columns=["machine_id", "ts", *sensors])
        features = compute_frame(group, config.machine_type(machine_type), config.allowed_lateness_ms)
        accepted = features.pop("accepted").to_numpy()
        for (machine_id, ts), row, ok in zip(group[["machine_id", "ts"]].itertuples(index=False),
                                             features.to_numpy(), accepted, strict=True):
            if ok:
                per_reading[(machine_id, int(ts))] = row
                last[machine_id] = row
    return per_reading, last


class Service:
    """One `forewarn run features` worker process with settings isolated to this test."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "forewarn.cli", "run", "features"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def features_env(stack, uid, tmp_path) -> dict[str, str]:
    prefix = f"test.{uid}."
    stack.ensure_topics([prefix + t for t in (topics.SENSOR_READINGS, topics.FEATURE_VECTORS,
                                              topics.SENSOR_READINGS_DLQ)], partitions=PARTITIONS)
    return {
        **os.environ,
        "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka.bootstrap_servers,
        "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
        "FOREWARN_KAFKA__TOPIC_PARTITIONS": str(PARTITIONS),
        "FOREWARN_REDIS__URL": stack.settings.redis.url,
        "FOREWARN_REDIS__KEY_PREFIX": f"test-{uid}",
        "FOREWARN_FEATURES__APP_ID": f"features-{uid}",
        "FOREWARN_FEATURES__SNAPSHOT_INTERVAL_S": "1",
        "FOREWARN_FEATURES__BATCH_MAX": "50",
        "FOREWARN_FEATURES__DATADIR": str(tmp_path / "faust"),
        "FOREWARN_ASSET_CONFIG": "plant",
    }


def produce(env: dict[str, str], readings: list[dict]) -> None:
    from forewarn.settings import KafkaSettings

    settings = KafkaSettings(bootstrap_servers=env["FOREWARN_KAFKA__BOOTSTRAP_SERVERS"])
    producer = kafka.producer(settings)
    topic = env["FOREWARN_KAFKA__TOPIC_PREFIX"] + topics.SENSOR_READINGS
    for reading in readings:
        producer.produce(topic, key=reading["machine_id"], value=orjson.dumps(reading))
    assert producer.flush(30) == 0


class VectorReader:
    def __init__(self, env: dict[str, str], uid: str) -> None:
        from forewarn.settings import KafkaSettings

        self.consumer = kafka.consumer(KafkaSettings(bootstrap_servers=env["FOREWARN_KAFKA__BOOTSTRAP_SERVERS"]),
                                       group_id=f"reader-{uid}")
        self.consumer.subscribe([env["FOREWARN_KAFKA__TOPIC_PREFIX"] + topics.FEATURE_VECTORS])
        self.rows: list[tuple[str, int, np.ndarray]] = []

    def read_until(self, distinct: int, timeout_s: float, service: Service | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while len({(m, t) for m, t, _ in self.rows}) < distinct and time.monotonic() < deadline:
            for message in self.consumer.consume(200, timeout=0.5):
                if message.error():
                    continue
                block = decode(message.value())
                self.rows += [(m, int(t), block.matrix[i]) for i, (m, t) in
                              enumerate(zip(block.machine_ids, block.ts.tolist(), strict=True))]
            if service is not None and service.proc.poll() is not None:
                pytest.fail(f"features worker exited:\n{service.log_tail()}")

    def close(self) -> None:
        self.consumer.close()


def assert_vectors_match(rows: list[tuple[str, int, np.ndarray]], expected: dict) -> None:
    seen: dict[tuple[str, int], np.ndarray] = {}
    for machine_id, ts, row in rows:
        key = (machine_id, ts)
        if key in seen:  # re-emitted after a restart: must be the very same vector
            assert np.array_equal(seen[key], row, equal_nan=True), key
        seen[key] = row
    assert set(seen) == set(expected)
    for key, row in expected.items():
        assert np.array_equal(seen[key], row, equal_nan=True), key


def assert_online_store_matches(env: dict[str, str], last: dict[str, np.ndarray]) -> None:
    store = RedisFeatureStore(redis.Redis.from_url(env["FOREWARN_REDIS__URL"]), env["FOREWARN_REDIS__KEY_PREFIX"])
    deadline = time.monotonic() + 20
    while True:
        mismatched = []
        for machine_id, row in last.items():
            vector = store.read(machine_id)
            got = None if vector is None else np.array([np.nan if v is None else v for v in vector.features.values()])
            if got is None or not np.array_equal(got, row, equal_nan=True):
                mismatched.append(machine_id)
        if not mismatched or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert mismatched == []


def test_streaming_features_equal_offline_features(features_env, uid, tmp_path) -> None:
    readings = make_readings(machines=24, per_machine=40, seed=1)
    expected, last = expected_features(readings)
    produce(features_env, readings)
    service = Service(features_env, tmp_path / "worker.log")
    reader = VectorReader(features_env, uid)
    service.start()
    try:
        reader.read_until(len(expected), 120, service)
    finally:
        service.kill(signal.SIGTERM)
        reader.close()
    assert_vectors_match(reader.rows, expected)
    assert_online_store_matches(features_env, last)


def test_kill_9_and_restart_loses_and_double_counts_nothing(features_env, uid, tmp_path) -> None:
    readings = make_readings(machines=20, per_machine=60, seed=2)
    expected, last = expected_features(readings)
    half = len(readings) // 2
    service = Service(features_env, tmp_path / "worker.log")
    reader = VectorReader(features_env, uid)
    produce(features_env, readings[:half])
    service.start()
    try:
        reader.read_until(len(expected_features(readings[:half])[0]) // 2, 120, service)
        time.sleep(1.5)  # let at least one snapshot happen, so recovery uses snapshot + replay
        service.kill(signal.SIGKILL)
        produce(features_env, readings[half:])
        restarted = time.monotonic()
        service.start()
        reader.read_until(len(expected), 120, service)
        recovery_s = time.monotonic() - restarted
    finally:
        service.kill(signal.SIGTERM)
        reader.close()
    print(f"recovered and caught up in {recovery_s:.1f}s")
    assert_vectors_match(reader.rows, expected)
    assert_online_store_matches(features_env, last)


def test_two_workers_split_partitions_and_agree_with_one(features_env, uid, tmp_path) -> None:
    readings = make_readings(machines=24, per_machine=40, seed=3)
    expected, last = expected_features(readings)
    first = Service({**features_env, "FOREWARN_FEATURES__PORT": str(free_port())}, tmp_path / "w1.log")
    second = Service({**features_env, "FOREWARN_FEATURES__PORT": str(free_port())}, tmp_path / "w2.log")
    reader = VectorReader(features_env, uid)
    first.start()
    second.start()
    try:
        time.sleep(8)  # both join the group before the data arrives
        produce(features_env, readings)
        reader.read_until(len(expected), 120, first)
    finally:
        first.kill(signal.SIGTERM)
        second.kill(signal.SIGTERM)
        reader.close()
    assert_vectors_match(reader.rows, expected)
    assert_online_store_matches(features_env, last)
    # Both members served partitions (each logs the partitions it took over).
    assert "partition restored" in first.log_path.read_text()
    assert "partition restored" in second.log_path.read_text()
