"""``forewarn bench features``: the running features service against a bare consumer, same topic, same run.

The load is a simulated fleet produced to fresh topics before anything is timed, so the producer does not
compete for the two cores. Then:

1. baseline: a bare batched confluent-kafka consumer reads the whole topic (the broker's limit here);
2. the features service (``forewarn run features``, one worker) consumes the same topic under its own
   consumer group; its throughput comes from its own Prometheus counter, sampled five times a second, over
   the span between its first and its last processed batch.

Memory per machine: the engine's state bound (``state_bytes``) and what Redis reports (``MEMORY USAGE``)
for the online vector and the snapshot of each machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console

from forewarn import kafka, topics
from forewarn.readings_wire import decode_value
from forewarn.settings import ForewarnSettings

_COUNTER = re.compile(r'^forewarn_features_readings_total\{outcome="(\w+)"\} ([0-9.e+]+)$', re.M)


def bare_consume(settings: ForewarnSettings, topic: str, expected: int, timeout_s: float = 300) -> float:
    """Readings/s of a bare batched consumer reading the topic's ``expected`` readings (it parses each
    message's JSON to count the readings an envelope holds, and does nothing else)."""
    consumer = kafka.consumer(settings.kafka, group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([topic])
    seen = 0
    started = None
    deadline = time.monotonic() + timeout_s
    while seen < expected and time.monotonic() < deadline:
        messages = consumer.consume(10_000, timeout=1.0)
        if messages and started is None:
            started = time.perf_counter()
        seen += sum(len(decode_value(m.value())) for m in messages if m.error() is None)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    if seen < expected:
        raise RuntimeError(f"baseline consumer saw {seen} of {expected} readings in {timeout_s}s")
    return seen / elapsed if elapsed > 0 else float("inf")


def processed(metrics_text: str) -> int:
    return int(sum(float(v) for outcome, v in _COUNTER.findall(metrics_text) if outcome != "replayed_skip"))


def run_features_bench(
    *, machines: int, duration: str, partitions: int, batch_max: int, emit_interval_ms: int, console: Console,
) -> dict[str, Any]:
    from forewarn.features import state_bytes
    from forewarn.redis_client import connect
    from forewarn.sim.commands import run_simulation
    from forewarn.sim.outputs import OutputSpec
    from forewarn.stack.manager import LocalStack
    from forewarn.stack.process import free_port

    stack = LocalStack(report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))
    stack.up()
    uid = uuid.uuid4().hex[:8]
    prefix = f"bench.{uid}."
    base = stack.settings
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})})
    names = [prefix + t for t in (topics.SENSOR_READINGS, topics.FEATURE_VECTORS, topics.SENSOR_READINGS_DLQ)]
    stack.ensure_topics(names, partitions=partitions)
    source = settings.kafka.topic(topics.SENSOR_READINGS)
    redis_prefix = f"bench-{uid}"
    client = connect(settings.redis)
    service: subprocess.Popen | None = None
    try:
        console.print(f"producing a simulated fleet of {machines} machines for {duration} into {source}")
        run_simulation(
            OutputSpec(to="kafka", truth="none"), machines=machines, config="plant", duration=duration,
            start="2026-01-01T00:00:00Z", interval="1s", seed=1, degrading_fraction=0.1, maintenance_every="off",
            rates=(0.001, 0.001, 0.005, 0.0), rate=None, speedup=None, progress=False, settings=settings,
            console=console,
        )
        total = kafka.count_readings(settings.kafka, source)
        console.print(f"{total} readings in the topic; baseline: bare batched consumer")
        baseline = bare_consume(settings, source, total)

        port = free_port()
        env = {
            **os.environ,
            "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
            "FOREWARN_KAFKA__TOPIC_PARTITIONS": str(partitions),
            "FOREWARN_REDIS__URL": settings.redis.url,
            "FOREWARN_REDIS__KEY_PREFIX": redis_prefix,
            "FOREWARN_FEATURES__APP_ID": f"bench-features-{uid}",
            "FOREWARN_FEATURES__PORT": str(port),
            "FOREWARN_FEATURES__BATCH_MAX": str(batch_max),
            "FOREWARN_FEATURES__EMIT_INTERVAL_MS": str(emit_interval_ms),
            "FOREWARN_FEATURES__ONLINE_FLUSH_S": "1.0",
            "FOREWARN_FEATURES__DATADIR": f"/tmp/forewarn-bench-{uid}",
            "FOREWARN_ASSET_CONFIG": "plant",
            "FOREWARN_LOG_LEVEL": "WARNING",
        }
        console.print("features service: one worker, same topic")
        log_path = Path(env["FOREWARN_FEATURES__DATADIR"]) / "service.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall the service
            service = subprocess.Popen([sys.executable, "-m", "forewarn.cli", "run", "features"], env=env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        samples, peak_rss = _sample(service, port, total, console, log_path)
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        readings_per_s = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
        redis_bytes = _redis_bytes_per_machine(client, redis_prefix, machines)
        result = {
            "readings_per_s": round(readings_per_s, 1),
            "baseline_readings_per_s": round(baseline, 1),
            "ratio": round(readings_per_s / baseline, 4) if baseline else None,
            "state_bytes_per_machine": max(state_bytes(t) for t in _plant_types()),
            "redis_bytes_per_machine": redis_bytes,
            "readings": total,
            "machines": machines,
            "partitions": partitions,
            "batch_max": batch_max,
            "emit_interval_ms": emit_interval_ms,
            "service_peak_rss_mb": round(peak_rss / 2**20, 1),
            "targets": {"readings_per_s": 30_000, "state_bytes_per_machine": 5_000},
            "meets_target": readings_per_s >= 30_000 and max(state_bytes(t) for t in _plant_types()) <= 5_000,
        }
        return result
    finally:
        if service is not None and service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
        kafka.admin(settings.kafka).delete_topics(names)
        keys = list(client.scan_iter(f"{redis_prefix}:*", count=10_000))
        for i in range(0, len(keys), 5000):
            client.delete(*keys[i:i + 5000])


def _plant_types() -> list[Any]:
    from forewarn.assets import load_asset_config

    return list(load_asset_config("plant").machine_types.values())


def _sample(service: subprocess.Popen, port: int, total: int, console: Console, log_path: Path,
            timeout_s: float = 300) -> tuple[list[tuple[float, int]], int]:
    """(time, readings processed) from the service's first batch to its last, and its peak RSS."""
    samples: list[tuple[float, int]] = []
    peak = 0
    deadline = time.monotonic() + timeout_s
    proc = psutil.Process(service.pid)
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"features service exited; its log:\n{log_path.read_text()[-2000:]}")
        try:
            count = processed(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
        except httpx.HTTPError:
            count = 0
        peak = max(peak, proc.memory_info().rss)
        now = time.perf_counter()
        if count > 0 and (not samples or count > samples[-1][1]):
            samples.append((now, count))
            console.print(f"  processed {count:>9,} / {total:,}", end="\r")
        if count >= total:
            console.print()
            if len(samples) < 2:
                raise RuntimeError("the run was too short to measure a rate; use more --machines or --duration")
            return samples, peak
        time.sleep(0.2)
    raise RuntimeError(f"features service processed {samples[-1][1] if samples else 0} of {total} in {timeout_s}s; "
                       f"its log: {log_path}")


def _redis_bytes_per_machine(client: Any, prefix: str, machines: int) -> int:
    online = [k for k, _ in zip(client.scan_iter(f"{prefix}:fv:*", count=1000), range(200), strict=False)]
    per_vector = sum(client.memory_usage(k) or 0 for k in online) / max(1, len(online))
    snapshots = sum(client.memory_usage(k) or 0 for k in client.scan_iter(f"{prefix}:fstate:*"))
    return int(per_vector + snapshots / max(1, machines))
