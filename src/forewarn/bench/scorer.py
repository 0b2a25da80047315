"""``forewarn bench scorer``: the scorer's batch path against a bare ``Booster.predict``, and on-demand latency.

Batch path: feature blocks (as they arrive from ``features.vectors``) through ``score_block`` and
``ScoredBlock.payloads`` — column alignment, predict (the model compiled by lleaves at load time, as the
service does), calibration, contributions for the risky rows, and the ``risk.scores`` JSON documents the
stream loop produces — against a bare ``Booster.predict`` on the same matrix, one thread each, in the same
run. The compiled model's own predict is timed too (``compiled_predict_rows_per_s``). The model is a LightGBM
classifier over the plant pump's real feature names; the rows are 10,000 machines reading once a second, ~2% of them
drifting towards failure; risky machines are explained once a minute as in the service, and the share of
scores carrying evidence is reported.

On demand: the real scorer service (``forewarn run scorer``) with the model registered in MLflow under a
bench name and vectors in Redis under a bench prefix; sequential ``GET /v1/machines/{id}/risk`` over one
keep-alive connection.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console


def _model(names: list[str], rounds: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20_000, len(names)))
    logit = 2.5 * x[:, 10] + 1.5 * x[:, 20] - 1.0 * x[:, 30] - 7.0  # failures are rare
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "seed": seed, "num_leaves": 31,
                         "deterministic": True}, lgb.Dataset(x, y, feature_name=names), num_boost_round=rounds)
    return booster, x, y


def batch_path(rows: int, rounds: int, batch: int, explain_above: float, console: Console) -> dict[str, Any]:
    from forewarn.assets import load_asset_config
    from forewarn.features import FEATURE_SET_VERSION, feature_names
    from forewarn.model_bundle import ModelBundle
    from forewarn.services.scorer.scoring import EvidenceCache, score_block
    from forewarn.vector_codec import VectorBlock

    names = feature_names(load_asset_config("plant").machine_type("pump"))
    booster, _, _ = _model(names, rounds, seed=1)
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(rows, len(names)))
    bundle = ModelBundle(booster=booster, name="bench", version="1", feature_names=names, horizon="24h",
                         feature_set_version=FEATURE_SET_VERSION, num_threads=1)
    with tempfile.TemporaryDirectory(prefix="forewarn-bench-compiled-") as cache:
        started = time.perf_counter()
        bundle.compile(Path(cache))  # as the service does at load time; keeps Booster.predict if it fails
        compile_s = time.perf_counter() - started
    ids = [f"m{i % 10_000}" for i in range(rows)]
    blocks = [
        VectorBlock("pump", FEATURE_SET_VERSION, names, ids[s:s + batch],
                    1000 * (np.arange(s, min(rows, s + batch)) // 10_000), matrix[s:s + batch])
        for s in range(0, rows, batch)
    ]
    # A fleet where risk is rare, as in operation: ~2% of machines drift towards failure.
    risky_machines = rng.random(10_000) < 0.02
    matrix[risky_machines[np.arange(rows) % 10_000], 10] += 2.5
    console.print(f"batch path: {rows:,} rows x {len(names)} features, {rounds} trees, blocks of {batch}, "
                  + (f"compiled in {compile_s:.1f} s" if bundle.compiled else "NOT compiled (see the log)"))
    best_bare = best_scorer = best_compiled = float("inf")
    evidence = EvidenceCache(60_000)  # as the service runs it: a risky machine re-explained once a minute

    def scorer_pass() -> tuple[float, int]:
        started = time.perf_counter()
        explained = 0
        for block in blocks:
            scores = score_block(bundle, block, explain_above=explain_above, top_k=5, evidence=evidence)
            scores.payloads()  # the Kafka values the stream loop produces
            explained += scores.explained
        return time.perf_counter() - started, explained

    # Cold: every risky machine is explained for the first time (TreeSHAP, ~100 predicts a row). In
    # operation that happens once a minute per risky machine; the steady state below has the cache warm.
    cold, explained = scorer_pass()
    for _ in range(3):  # best of three: the machine is shared and noisy
        started = time.perf_counter()
        for block in blocks:
            booster.predict(block.matrix, num_threads=1)
        best_bare = min(best_bare, time.perf_counter() - started)
        if bundle.compiled is not None:
            started = time.perf_counter()
            for block in blocks:
                bundle.compiled.predict(block.matrix, num_threads=1)
            best_compiled = min(best_compiled, time.perf_counter() - started)
        best_scorer = min(best_scorer, scorer_pass()[0])
    return {
        "rows_per_s": round(rows / best_scorer, 1),
        "baseline_rows_per_s": round(rows / best_bare, 1),
        "ratio": round(best_bare / best_scorer, 4),
        "compiled": bundle.compiled is not None,
        "compiled_predict_rows_per_s": round(rows / best_compiled, 1) if bundle.compiled is not None else None,
        "compile_s": round(compile_s, 2),
        "rows": rows,
        "features": len(names),
        "trees": rounds,
        "block_rows": batch,
        "explain_above": explain_above,
        "explained_share": round(explained / rows, 4),
        "cold_rows_per_s": round(rows / cold, 1),
    }


def on_demand(requests: int, rounds: int, console: Console) -> dict[str, Any]:
    import httpx
    import mlflow
    from mlflow import MlflowClient

    from forewarn import topics
    from forewarn.assets import load_asset_config
    from forewarn.features import FEATURE_SET_VERSION, feature_names
    from forewarn.localrun import ServiceProcess
    from forewarn.model_bundle import log_bundle
    from forewarn.online_store import RedisFeatureStore
    from forewarn.redis_client import connect
    from forewarn.stack.manager import LocalStack
    from forewarn.stack.process import free_port

    stack = LocalStack(report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))
    stack.up()
    settings = stack.settings
    uid = uuid.uuid4().hex[:8]
    model_name, prefix = f"bench-scorer-{uid}", f"bench-{uid}"
    names = feature_names(load_asset_config("plant").machine_type("pump"))
    booster, x, _ = _model(names, rounds, seed=1)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment("bench-scorer")
    with mlflow.start_run():
        version = log_bundle(booster, registered_name=model_name, horizon="24h",
                             feature_set_version=FEATURE_SET_VERSION)
    client = MlflowClient(settings.mlflow.tracking_uri)
    client.set_registered_model_alias(model_name, "champion", version)
    stack.ensure_topics([f"bench.{uid}.{t}" for t in (topics.FEATURE_VECTORS, topics.RISK_SCORES)])
    redis_client = connect(settings.redis)
    store = RedisFeatureStore(redis_client, prefix)
    machines = 1000
    store.write_rows(machine_type="pump", feature_set_version=FEATURE_SET_VERSION, names=names,
                     machine_ids=[f"m{i}" for i in range(machines)], ts=list(range(machines)), matrix=x[:machines])
    port = free_port()
    env = {**os.environ, "FOREWARN_MLFLOW__MODEL_NAME": model_name, "FOREWARN_REDIS__KEY_PREFIX": prefix,
           "FOREWARN_SCORER__PORT": str(port), "FOREWARN_SCORER__GROUP_ID": f"bench-{uid}",
           "FOREWARN_KAFKA__TOPIC_PREFIX": f"bench.{uid}.", "FOREWARN_LOG_LEVEL": "WARNING"}
    service = ServiceProcess("scorer", env, port, settings.state_dir / "logs" / f"bench-scorer-{uid}.log")
    service.start()
    try:
        service.wait_ready(120)
        latencies = []
        from forewarn.access import API_KEY_HEADER, DEV_ROLE_KEYS, Role  # the scorer runs with development keys

        viewer = {API_KEY_HEADER: DEV_ROLE_KEYS[Role.VIEWER]}
        with httpx.Client(base_url=service.url, timeout=5, headers=viewer, verify=service.verify()) as http:
            for i in range(50):  # warm-up: connection, caches
                http.get(f"/v1/machines/m{i}/risk").raise_for_status()
            console.print(f"on demand: {requests} sequential GET /v1/machines/{{id}}/risk")
            for i in range(requests):
                started = time.perf_counter()
                answer = http.get(f"/v1/machines/m{i % machines}/risk")
                latencies.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
    finally:
        service.stop()
        client.delete_registered_model(model_name)
        from forewarn import kafka

        kafka.admin(settings.kafka).delete_topics([f"bench.{uid}.{t}" for t in (topics.FEATURE_VECTORS,
                                                                                  topics.RISK_SCORES)])
        keys = list(redis_client.scan_iter(f"{prefix}:*", count=5000))
        if keys:
            redis_client.delete(*keys)
    ordered = sorted(latencies)
    return {
        "on_demand_p50_ms": round(float(np.percentile(ordered, 50)), 3),
        "on_demand_p99_ms": round(float(np.percentile(ordered, 99)), 3),
        "on_demand_requests": requests,
    }


def run_scorer_bench(*, rows: int, rounds: int, batch: int, explain_above: float, requests: int,
                     console: Console) -> dict[str, Any]:
    result = batch_path(rows, rounds, batch, explain_above, console)
    result.update(on_demand(requests, rounds, console))
    result["targets"] = {"rows_per_s": 200_000, "ratio": 0.8, "on_demand_p99_ms": 10}
    result["meets_target"] = (result["rows_per_s"] >= 200_000 and result["ratio"] >= 0.8
                              and result["on_demand_p99_ms"] <= 10)
    result["python"] = sys.version.split()[0]
    return result
