"""The closed loop on the real stack: drift -> model-health -> retrain -> gates -> promote -> hot swap.

A weak champion (trained on shuffled labels) serves; the scorer and the monitor run as processes. Feature
blocks stream into ``features.vectors``: first the training set's own rows (clean: nothing drifts), then
the same rows with the pump's temperature recalibrated (every temperature level feature shifted). The
monitor must name temperature on pump, publish ``data_drift`` on ``model.health``, start a retraining
after the sustained windows, and the retrained challenger (the same machines with real labels) must pass
the gates, become champion, be served by the scorer's hot swap and be monitored with its own reference.
Bounded: the test gives up after 6 minutes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
from tests.integration.test_train_promote import build_training_set

from forewarn import kafka, topics, vector_codec
from forewarn.assets import load_asset_config
from forewarn.features import FEATURE_SET_VERSION, feature_names

DEADLINE_S = 360
TEMPERATURE_LEVELS = ("last", "mean", "min", "max", "ewma")


def _blocks(data, shift: float) -> list[vector_codec.VectorBlock]:  # type: ignore[no-untyped-def]
    from forewarn.training.pipeline import load_training_set

    frame = load_training_set(data).frame
    config = load_asset_config("plant")
    blocks = []
    for type_name, rows in frame.groupby("machine_type"):
        # Shuffled: each block a sample of the whole fleet and period, as the reference is (a block of one
        # machine's consecutive rows is a window of one machine, which does differ from the fleet).
        rows = rows.sample(frac=1.0, random_state=0)
        names = [n for n in feature_names(config.machine_types[str(type_name)]) if n in rows.columns]
        matrix = rows[names].to_numpy(np.float64).copy()
        if shift and type_name == "pump":
            for j, name in enumerate(names):
                parts = name.split("__")
                if parts[0] == "temperature" and parts[-1] in TEMPERATURE_LEVELS:
                    matrix[:, j] += shift
        for start in range(0, len(rows), 200):
            part = slice(start, start + 200)
            blocks.append(vector_codec.VectorBlock(str(type_name), FEATURE_SET_VERSION, names,
                                                   rows["machine_id"].astype(str).tolist()[part],
                                                   rows["ts"].to_numpy(np.int64)[part], matrix[part]))
    return blocks


class Feed:
    """Produces feature blocks round-robin to every partition until stopped; ``drifted`` switches sets."""

    def __init__(self, settings, topic: str, clean, drifted) -> None:  # type: ignore[no-untyped-def]
        self.settings, self.topic, self.sets = settings, topic, {False: clean, True: drifted}
        self.drift = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        producer = kafka.producer(self.settings)
        partitions = len(producer.list_topics(self.topic, timeout=10).topics[self.topic].partitions)
        k = 0
        while not self.stop.is_set():
            blocks = self.sets[self.drift]
            for p in range(partitions):
                producer.produce(self.topic, vector_codec.encode(blocks[k % len(blocks)]), partition=p)
                k += 1
            producer.flush(10)
            self.stop.wait(0.1)


def _windows(url: str) -> list[dict]:
    try:
        viewer = {"X-API-Key": "forewarn-dev-viewer"}  # the pipeline's monitor runs with development keys
        return list(httpx.get(f"{url}/v1/windows?limit=50", timeout=10, headers=viewer).json())
    except (httpx.HTTPError, ValueError):
        return []  # busy with a window, or not up yet: ask again


def _ready(url: str) -> str:
    try:
        response = httpx.get(f"{url}/readyz", timeout=2)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


@pytest.mark.timeout(DEADLINE_S + 240)
def test_drift_retrains_gates_promotes_and_the_scorer_swaps(stack, tmp_path) -> None:
    from mlflow import MlflowClient

    from forewarn.localrun import LocalPipeline
    from forewarn.training.pipeline import TrainConfig, run_training
    from forewarn.training.promote import GateLimits, run_promotion

    uid = uuid.uuid4().hex[:10]
    prefix, model = f"test.loop.{uid}.", f"test-loop-{uid}"
    stack.ensure_topics([prefix + t for t in topics.ALL])
    tracking = stack.settings.mlflow.tracking_uri
    weak = build_training_set(tmp_path / "shuffled", shuffle_labels=True)
    good = build_training_set(tmp_path / "good")
    env = {
        "FOREWARN_MLFLOW__TRACKING_URI": tracking, "FOREWARN_MLFLOW__MODEL_NAME": model,
        "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka.bootstrap_servers,
        "FOREWARN_KAFKA__TOPIC_PREFIX": prefix, "FOREWARN_REDIS__URL": stack.settings.redis.url,
        "FOREWARN_REDIS__KEY_PREFIX": f"test-loop-{uid}", "FOREWARN_STACK__STATE_DIR": str(tmp_path / "state"),
        "FOREWARN_SCORER__MODEL_POLL_S": "1", "FOREWARN_SCORER__COMPILE_MODEL": "false",
        "FOREWARN_MONITOR__WINDOW_S": "3", "FOREWARN_MONITOR__SAMPLE_INTERVAL_S": "0.3",
        "FOREWARN_MONITOR__MIN_ROWS": "50", "FOREWARN_MONITOR__MIN_SCORES": "50",
        "FOREWARN_MONITOR__REFERENCE_POLL_S": "1", "FOREWARN_MONITOR__MAX_REPORTS": "2",
        "FOREWARN_MONITOR__RETRAIN": "true", "FOREWARN_RETRAIN__DATA_DIR": str(good),
        "FOREWARN_RETRAIN__QUICK": "true", "FOREWARN_RETRAIN__SUSTAINED_WINDOWS": "2",
        "FOREWARN_RETRAIN__DEBOUNCE_S": "0", "FOREWARN_RETRAIN__WORKDIR": str(tmp_path / "work"),
        "FOREWARN_RETRAIN__MIN_F1": "0.5", "FOREWARN_RETRAIN__MAX_FAIRNESS_GAP": "0.5",
        "FOREWARN_RETRAIN__MAX_CALIBRATION_ERROR": "0.2", "FOREWARN_RETRAIN__FAIRNESS_LIMIT": "0.5",
        "FOREWARN_LOG_LEVEL": "INFO",
    }
    settings = stack.settings.kafka.model_copy(update={"topic_prefix": prefix})
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        first = run_training(TrainConfig.quick_config(weak, experiment=f"test-loop-{uid}"), tracking_uri=tracking,
                             model_name=model)
        outcome = run_promotion(tracking_uri=tracking, name=model, alias="champion", version=str(first.version),
                                limits=GateLimits(0.0, 1.0, 1.0), audit_path=tmp_path / "audit.jsonl",
                                kafka_settings=None, feature_set_version=FEATURE_SET_VERSION)
        assert outcome.decision.promoted
    feed = Feed(settings, settings.topic(topics.FEATURE_VECTORS), _blocks(good, 0.0), _blocks(good, 25.0))
    pipeline = LocalPipeline(env=env, log_dir=tmp_path / "logs")
    client = MlflowClient(tracking)
    try:
        pipeline.start(("scorer", "monitor"))
        feed.thread.start()
        monitor = pipeline["monitor"].url
        began = time.monotonic()
        clean: list[dict] = []
        while len(clean) < 3 and time.monotonic() - began < 120:
            time.sleep(1)
            clean = [w for w in _windows(monitor) if w["machine_types"].get("pump", {}).get("judged")]
        assert clean, pipeline["monitor"].tail(30)
        assert not any(w["machine_types"]["pump"]["sensors"] for w in clean), clean[0]["machine_types"]["pump"]
        feed.drift = True
        promoted = None
        while time.monotonic() - began < DEADLINE_S:
            time.sleep(2)
            champion = str(client.get_model_version_by_alias(model, "champion").version)
            if champion != str(first.version) and champion in _ready(pipeline["scorer"].url) \
                    and champion in _ready(monitor):
                promoted = champion
                break
        logs = pipeline["monitor"].tail(40)
        assert promoted is not None, f"no new champion served within {DEADLINE_S}s\n{logs}"
    finally:
        feed.stop.set()
        pipeline.stop()
    health = [json.loads(m.value()) for m in kafka.read_all(settings, settings.topic(topics.MODEL_HEALTH),
                                                            timeout_s=30)]
    drifted = [e for e in health if e["condition"] == "data_drift" and e["active"] and e["scope"] == "pump"]
    assert drifted and "temperature" in drifted[0]["sensors"]
    records = [json.loads(line) for line in (tmp_path / "state" / "audit" / "retraining.jsonl").read_text()
               .splitlines()]
    assert records[-1]["decision"] == "promoted" and "drift" in records[-1]["reason"]
    assert records[-1]["champion_before"] == str(first.version) and records[-1]["champion_after"] == promoted
