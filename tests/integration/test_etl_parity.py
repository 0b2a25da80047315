"""Train/serve parity: the same readings through the streaming features service (real Kafka and Redis)
and through the Spark path (`etl stream --once` to a lake, then `etl build`) give the same features for
every machine and timestamp, to 1e-9 relative (in practice: bit for bit)."""

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

from forewarn import kafka, topics
from forewarn.assets import load_asset_config
from forewarn.etl import stream
from forewarn.etl.build import build
from forewarn.etl.spec import BuildSpec, Horizon
from forewarn.features import feature_names
from forewarn.readings_wire import envelopes, partition_for
from forewarn.settings import KafkaSettings
from forewarn.vector_codec import decode

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
BASE = 1_767_225_600_000
CONFIG = load_asset_config("plant")


@pytest.fixture(scope="module")
def spark():
    from forewarn.etl.jobs import session

    spark = session("test-etl-parity", with_kafka=True, shuffle_partitions=2)
    yield spark
    spark.stop()


def make_records(machines: int = 16, steps: int = 40, seed: int = 7) -> list[tuple[int, bytes]]:
    """(partition, value): two machine types, missing values, out-of-order and late readings, exact
    duplicates, records the service rejects or reads partly (odd values, unknown type, not JSON). Half the
    machines send one reading per message, the other half travel in envelopes (forewarn.readings_wire), as
    the simulator and ingest send them; a machine stays in its partition either way."""
    rng = np.random.default_rng(seed)
    records: list[tuple[int, bytes]] = []
    for step in range(steps):
        batch = []
        for m in range(machines):
            machine_id, machine_type = f"m{m:02d}", ("pump", "compressor")[m % 2]
            sensors = CONFIG.machine_type(machine_type).sensor_names
            ts = BASE + step * 1000 + int(rng.integers(0, 300))
            if step > 3 and rng.random() < 0.04:
                ts -= 2500  # out of order, within the 30 s allowed lateness
            if step > 10 and rng.random() < 0.01:
                ts -= 60_000  # too late: dropped by the engine
            values: dict[str, object] = {s: round(float(rng.normal(50, 5)), 3) for s in sensors if rng.random() > 0.08}
            if rng.random() < 0.02:
                values["temperature"] = "n/a"  # not a number: missing
            reading = {"machine_id": machine_id, "machine_type": machine_type, "ts": ts, "values": values}
            copies = 2 if rng.random() < 0.02 else 1  # the same reading sent twice
            if m < machines // 2:
                records += [(partition_for(machine_id, PARTITIONS), orjson.dumps(reading))] * copies
            else:
                batch += [reading] * copies
        records += [(p, value) for p, value, _ in envelopes(batch, PARTITIONS)]
    records += [(0, b"{not json"), (1, orjson.dumps({"machine_id": "m01", "machine_type": "turbine", "ts": BASE,
                                                     "values": {}}))]
    return records


class FeaturesService:
    """One `forewarn run features` worker with settings isolated to this test."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "forewarn.cli", "run", "features"], env=self.env,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def read_vectors(settings: KafkaSettings, topic: str, group: str, distinct: int, timeout_s: float,
                 service: FeaturesService) -> dict[tuple[str, int], np.ndarray]:
    consumer = kafka.consumer(settings, group_id=group)
    consumer.subscribe([topic])
    vectors: dict[tuple[str, int], np.ndarray] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(vectors) < distinct and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error():
                    continue
                block = decode(message.value())
                for i, (machine_id, ts) in enumerate(zip(block.machine_ids, block.ts.tolist(), strict=True)):
                    key = (machine_id, int(ts))
                    assert key not in vectors or np.array_equal(vectors[key], block.matrix[i], equal_nan=True)
                    vectors[key] = block.matrix[i]
            if service.proc is not None and service.proc.poll() is not None:
                pytest.fail(f"features worker exited:\n{service.log_path.read_text()[-3000:]}")
    finally:
        consumer.close()
    return vectors


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    both_nan = np.isnan(a) & np.isnan(b)
    if (np.isnan(a) != np.isnan(b)).any():
        return float("inf")
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    diff = np.where(both_nan, 0.0, np.abs(a - b) / scale)
    return float(diff.max(initial=0.0))


def test_spark_training_features_equal_the_streaming_service(spark, stack, uid, tmp_path) -> None:
    settings = stack.settings.kafka.model_copy(update={"topic_prefix": f"test.parity.{uid}.",
                                                       "topic_partitions": PARTITIONS})
    stack.ensure_topics([settings.topic(t) for t in (topics.SENSOR_READINGS, topics.FEATURE_VECTORS,
                                                     topics.SENSOR_READINGS_DLQ)], partitions=PARTITIONS)
    records = make_records()
    producer = kafka.producer(settings)
    for partition, value in records:
        producer.produce(settings.topic(topics.SENSOR_READINGS), value=value, partition=partition)
    assert producer.flush(30) == 0

    service = FeaturesService({
        **os.environ,
        "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "FOREWARN_KAFKA__TOPIC_PREFIX": settings.topic_prefix,
        "FOREWARN_KAFKA__TOPIC_PARTITIONS": str(PARTITIONS),
        "FOREWARN_REDIS__URL": stack.settings.redis.url,
        "FOREWARN_REDIS__KEY_PREFIX": f"test-parity-{uid}",
        "FOREWARN_FEATURES__APP_ID": f"features-parity-{uid}",
        "FOREWARN_FEATURES__BATCH_MAX": "97",
        "FOREWARN_FEATURES__PORT": str(_free_port()),
        "FOREWARN_FEATURES__DATADIR": str(tmp_path / "faust"),
        "FOREWARN_ASSET_CONFIG": "plant",
    }, tmp_path / "features.log")
    service.start()  # works while Spark does
    try:
        lake_dir = tmp_path / "lake"
        report = stream.run(spark, stream.plan_for(settings, lake_dir, None), settings, "once")
        assert report.input_rows["readings"] == len(records)  # Kafka records, envelopes included
        result = build(spark, lake_dir, tmp_path / "training", BuildSpec(config="plant", horizon=Horizon.parse("1h")))
        training = pd.read_parquet(result.dataset)
        online = read_vectors(settings, settings.topic(topics.FEATURE_VECTORS), f"parity-{uid}", len(training), 180,
                              service)
    finally:
        service.stop()

    by_status = result.manifest["rows"]["by_status"]
    assert by_status["rejected"] == 2 and by_status["late_or_duplicate"] > 0
    assert len(training) == by_status["accepted"] == len(online) > 0
    compared, values, worst = 0, 0, 0.0
    for machine_type, group in training.groupby("machine_type", observed=True):
        names = feature_names(CONFIG.machine_type(str(machine_type)))
        for machine_id, ts, row in zip(group["machine_id"], group["ts"], group[names].to_numpy(), strict=True):
            worst = max(worst, relative_error(row, online[(machine_id, int(ts))]))
            compared += 1
            values += len(names)
    print(f"parity: {compared} readings ({values} feature values) compared, {len(training)} accepted offline, "
          f"{len(online)} online; max relative error {worst:.3g}")
    assert compared == len(training) == len(online)
    assert worst <= 1e-9


def _free_port() -> int:
    from forewarn.stack.process import free_port

    return free_port()
