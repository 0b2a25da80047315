"""The scorer on the real broker and registry: every vector scored once, hot swap when the alias moves."""

from __future__ import annotations

import threading
import time

import lightgbm as lgb
import numpy as np
from prometheus_client import CollectorRegistry

from forewarn import kafka, topics
from forewarn.model_bundle import log_bundle
from forewarn.scores_wire import decode_value
from forewarn.services.scorer.loop import ScoreLoop
from forewarn.services.scorer.metrics import ScorerMetrics
from forewarn.services.scorer.model_watch import ModelHolder
from forewarn.services.scorer.settings import ScorerOptions, ScorerSettings
from forewarn.vector_codec import VectorBlock, encode

NAMES = ["vibration__10m__mean", "temperature__10m__slope"]


def _register(tracking_uri: str, name: str, seed: int) -> str:
    import mlflow

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] > 0.5).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "seed": seed},
                        lgb.Dataset(x, y, feature_name=NAMES), num_boost_round=5 + seed)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"scorer-{name}")
    with mlflow.start_run():
        return log_bundle(booster, registered_name=name, horizon="24h", feature_set_version="test")


def _produce(settings: ScorerSettings, machines: list[str], start: int) -> None:
    producer = kafka.producer(settings.kafka)
    for first in range(0, len(machines), 50):
        ids = machines[first:first + 50]
        rows = np.arange(first, first + len(ids))
        block = VectorBlock(
            machine_type="pump", feature_set_version="test", names=list(reversed(NAMES)), machine_ids=ids,
            ts=start + rows, matrix=np.column_stack([np.full(len(ids), 0.1), (rows % 7) - 3.0]),
        )
        producer.produce(settings.kafka.topic(topics.FEATURE_VECTORS), value=encode(block))
    assert producer.flush(30) == 0


def _collect(settings: ScorerSettings, uid: str, want: int, timeout_s: float = 60) -> list[dict]:
    consumer = kafka.consumer(settings.kafka, group_id=f"collect-{uid}")
    consumer.subscribe([settings.kafka.topic(topics.RISK_SCORES)])
    scores: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(scores) < want and time.monotonic() < deadline:
        scores += [s for m in consumer.consume(1000, timeout=0.5) if not m.error() for s in decode_value(m.value())]
    consumer.close()
    return scores


def test_scores_every_vector_once_and_hot_swaps(stack, uid) -> None:
    from mlflow import MlflowClient

    prefix = f"test.{uid}."
    settings = ScorerSettings(
        kafka=stack.settings.kafka.model_copy(update={"topic_prefix": prefix}),
        mlflow=stack.settings.mlflow.model_copy(update={"model_name": f"scorer-test-{uid}"}),
        scorer=ScorerOptions(group_id=f"scorer-{uid}", batch_size=100, model_poll_s=0.2, explain_above=0.5),
    )
    stack.ensure_topics([prefix + topics.FEATURE_VECTORS, prefix + topics.RISK_SCORES], partitions=2)
    tracking, name = settings.mlflow.tracking_uri, settings.mlflow.model_name
    client = MlflowClient(tracking)
    v1 = _register(tracking, name, seed=1)
    client.set_registered_model_alias(name, "champion", v1)

    holder = ModelHolder.from_registry(tracking, name, "champion", num_threads=1)
    registry = CollectorRegistry()
    loop = ScoreLoop(settings, holder, ScorerMetrics(registry))
    watcher = holder.watch(loop.stop, settings.scorer.model_poll_s)
    worker = threading.Thread(target=loop.run, daemon=True)
    worker.start()
    try:
        first = [f"m{i % 20}-{uid}" for i in range(300)]
        _produce(settings, first, start=0)
        assert len(_collect(settings, uid + "a", 300)) >= 300

        v2 = _register(tracking, name, seed=2)
        client.set_registered_model_alias(name, "champion", v2)
        deadline = time.monotonic() + 30
        while (holder.current is None or holder.current.version != v2) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert holder.current.version == v2
        _produce(settings, first, start=10_000)
        scores = _collect(settings, uid + "b", 600)
    finally:
        loop.stop.set()
        worker.join(30)
        watcher.join(5)

    keys = [(s["machine_id"], s["ts"]) for s in scores]
    assert len(keys) == 600 and len(set(keys)) == 600, "each vector scored exactly once"
    by_version = {v: [s for s in scores if s["model_version"] == v] for v in (v1, v2)}
    assert {s["ts"] for s in by_version[v1]} == set(range(300))
    assert {s["ts"] for s in by_version[v2]} == set(range(10_000, 10_300))
    explained = [s for s in scores if s["p_failure"] >= 0.5]
    assert explained and all(s["top_contributors"] for s in explained)
    # Reading -> score: one observation per scored block; these vectors' event times are 1970 (ts 0..10,299
    # ms), so every age is decades, in the top (+Inf) bucket above a day.
    blocks = registry.get_sample_value("forewarn_scorer_reading_age_seconds_count")
    assert blocks is not None and 2 <= blocks <= 600
    assert registry.get_sample_value("forewarn_scorer_reading_age_seconds_bucket", {"le": "86400.0"}) == 0
    assert registry.get_sample_value("forewarn_scorer_reading_age_seconds_sum") > blocks * 50 * 365 * 86400
