"""Ingest throughput: one real ingest worker (uvicorn, 1 process) against a bare producer, same broker.

The run, all on loopback and bounded in readings and time:

1. fresh topics under a random prefix, so every count below is exact;
2. ``forewarn run ingest`` as a subprocess on a free port;
3. N readings (a share of them invalid, in several ways) posted in batches over a few concurrent
   keep-alive connections by a lean HTTP/1.1 client, so the client costs the shared CPUs little;
4. the topic and DLQ counted from their offsets (the producer is idempotent: no duplicates);
5. the baseline: a bare confluent-kafka producer with the same settings sends the same number of
   wire-format readings to a third topic.

Accounting must close: accepted == in_topic, rejected == in_dlq, accepted + rejected == sent.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from forewarn import kafka, topics
from forewarn.assets import load_asset_config
from forewarn.errors import UserError
from forewarn.readings_wire import pack
from forewarn.settings import KafkaSettings
from forewarn.stack.process import free_port

TARGET_READINGS_PER_S = 50_000
MAX_READINGS = 5_000_000
INVALID_KINDS = ("out_of_range", "unknown_sensor", "missing_field", "unknown_machine_type", "bad_timestamp",
                 "not_a_number")

Progress = Callable[[int], None]
"""Called with the number of readings answered so far."""


@dataclass(frozen=True)
class IngestBenchConfig:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    readings: int = 200_000
    batch: int = 500
    invalid_ratio: float = 0.01
    connections: int = 4
    timeout_s: float = 300.0
    asset_config: str = "plant"
    seed: int = 7

    def check(self) -> None:
        if not 1 <= self.readings <= MAX_READINGS:
            raise UserError(f"--readings must be between 1 and {MAX_READINGS}")
        if not 1 <= self.batch <= 10_000:
            raise UserError("--batch must be between 1 and 10000 (the ingest default limit per request)")
        if not 0 <= self.invalid_ratio < 1:
            raise UserError("--invalid-ratio must be in [0, 1)")
        if not 1 <= self.connections <= 64:
            raise UserError("--connections must be between 1 and 64")


def run_ingest_bench(config: IngestBenchConfig, progress: Progress = lambda _n: None) -> dict[str, Any]:
    config.check()
    deadline = time.monotonic() + config.timeout_s
    prefix = f"bench.{uuid.uuid4().hex[:8]}."
    settings = config.kafka.model_copy(update={"topic_prefix": prefix})
    readings_topic = settings.topic(topics.SENSOR_READINGS)
    dlq_topic = settings.topic(topics.SENSOR_READINGS_DLQ)
    baseline_topic = f"{prefix}baseline.{topics.SENSOR_READINGS}"
    _create_topics(settings, [readings_topic, dlq_topic, baseline_topic])
    try:
        items, invalid = _readings(config)
        bodies = [orjson.dumps(items[start:start + config.batch]) for start in range(0, len(items), config.batch)]
        api_key = secrets.token_urlsafe(24)
        port = free_port()
        worker = _Worker(settings, config.asset_config, port, api_key)
        try:
            worker.wait_ready(min(deadline, time.monotonic() + 90))
            try:
                client = asyncio.run(_post_all(port, api_key, bodies, config.connections, deadline, progress))
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise UserError(f"lost the ingest worker mid-run ({exc}); its output:\n{worker.output()}") from exc
        finally:
            worker.stop()
        in_topic = kafka.count_readings(settings, readings_topic)
        in_dlq = kafka.message_count(settings, dlq_topic)
        baseline = _baseline(settings, baseline_topic, items, deadline)
    finally:
        _delete_topics(settings, [readings_topic, dlq_topic, baseline_topic])

    sent = len(items)
    rate = (client.accepted + client.rejected) / client.elapsed_s if client.elapsed_s else 0.0
    closes = (client.accepted == in_topic and client.rejected == in_dlq and client.accepted + client.rejected == sent)
    latencies = sorted(client.latencies_s)
    return {
        "readings_per_s": round(rate, 1),
        "baseline_readings_per_s": round(baseline, 1),
        "ratio": round(rate / baseline, 4) if baseline else None,
        "target_readings_per_s": TARGET_READINGS_PER_S,
        "meets_target": rate >= TARGET_READINGS_PER_S,
        "sent": sent,
        "invalid_sent": invalid,
        "accepted": client.accepted,
        "rejected": client.rejected,
        "in_topic": in_topic,
        "in_dlq": in_dlq,
        "accounting_closed": closes,
        "requests": len(bodies),
        "requests_answered": sum(client.statuses.values()),
        "timed_out": client.timed_out,
        "status_counts": {str(code): n for code, n in sorted(client.statuses.items())},
        "elapsed_s": round(client.elapsed_s, 3),
        "request_latency_ms": {
            "p50": _percentile_ms(latencies, 0.50),
            "p95": _percentile_ms(latencies, 0.95),
            "p99": _percentile_ms(latencies, 0.99),
            "max": _percentile_ms(latencies, 1.0),
        },
        "batch": config.batch,
        "connections": config.connections,
        "invalid_ratio": config.invalid_ratio,
        "ingest_workers": 1,
        "bootstrap_servers": config.kafka.bootstrap_servers,
        "topic_partitions": config.kafka.topic_partitions,
        "errors": client.errors[:5],
    }


# ---- data ------------------------------------------------------------------------------------------

def _readings(config: IngestBenchConfig) -> tuple[list[dict[str, Any]], int]:
    """Plausible readings of every machine type, with ``invalid_ratio`` of them broken in turn."""
    rng = random.Random(config.seed)
    asset = load_asset_config(config.asset_config)
    types = list(asset.machine_types.items())
    now_ms = int(time.time() * 1000)
    every = round(1 / config.invalid_ratio) if config.invalid_ratio else 0
    items: list[dict[str, Any]] = []
    invalid = 0
    for i in range(config.readings):
        type_name, machine = types[i % len(types)]
        values = {
            name: round(sensor.min + (sensor.max - sensor.min) * rng.uniform(0.2, 0.8), 3)
            for name, sensor in machine.sensors.items()
        }
        item: dict[str, Any] = {
            "machine_id": f"{type_name}-{i % 997:04d}", "machine_type": type_name,
            "ts": now_ms - (config.readings - i), "values": values, "site": "bench",
        }
        if every and i % every == every - 1:
            _break(item, INVALID_KINDS[invalid % len(INVALID_KINDS)], asset.machine_types[type_name])
            invalid += 1
        items.append(item)
    return items, invalid


def _break(item: dict[str, Any], kind: str, machine: Any) -> None:
    name, sensor = next(iter(machine.sensors.items()))
    if kind == "out_of_range":
        item["values"][name] = sensor.max * 10 + 1
    elif kind == "unknown_sensor":
        item["values"]["no_such_sensor"] = 1.0
    elif kind == "missing_field":
        del item["machine_type"]
    elif kind == "unknown_machine_type":
        item["machine_type"] = "no_such_type"
    elif kind == "bad_timestamp":
        item["ts"] = "yesterday"
    elif kind == "not_a_number":
        item["values"][name] = None


# ---- server ----------------------------------------------------------------------------------------

class _Worker:
    """``forewarn run ingest`` as a subprocess, its output in a file (a pipe nobody reads would stall it)."""

    def __init__(self, settings: KafkaSettings, asset_config: str, port: int, api_key: str) -> None:
        self.port = port
        env = {
            **os.environ,
            "FOREWARN_ENVIRONMENT": "development",
            "FOREWARN_ASSET_CONFIG": asset_config,
            "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "FOREWARN_KAFKA__TOPIC_PREFIX": settings.topic_prefix,
            "FOREWARN_INGEST__HOST": "127.0.0.1",
            "FOREWARN_INGEST__PORT": str(port),
            "FOREWARN_INGEST__API_KEYS": api_key,
            "FOREWARN_LOG_LEVEL": "WARNING",
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "forewarn.cli", "run", "ingest"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(f"the ingest worker exited during start-up:\n{self.output()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise UserError(
            f"the ingest worker did not become ready in time (is the Kafka broker up?); its output:\n{self.output()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


# ---- client ----------------------------------------------------------------------------------------

@dataclass
class _ClientResult:
    accepted: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False


async def _post_all(
    port: int, api_key: str, bodies: list[bytes], connections: int, deadline: float, progress: Progress
) -> _ClientResult:
    result = _ClientResult()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in bodies:
        queue.put_nowait(payload)
    head = (
        f"POST /v1/readings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {api_key}\r\nConnection: keep-alive\r\n"
    ).encode()
    done = [0]

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty() and time.monotonic() < deadline:
                payload = queue.get_nowait()
                started = time.perf_counter()
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
                status, answer = await _read_response(reader)
                result.latencies_s.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    body = orjson.loads(answer)
                    result.accepted += body["accepted"]
                    result.rejected += len(body["rejected"])
                    done[0] += body["accepted"] + len(body["rejected"])
                    progress(done[0])
                else:
                    result.errors.append(f"HTTP {status}: {answer[:300].decode(errors='replace')}")
                    if status == 503:
                        body = orjson.loads(answer)
                        result.accepted += body["accepted"]
                        result.rejected += len(body["rejected"])
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(connections)))
    result.elapsed_s = time.perf_counter() - started
    result.timed_out = not queue.empty()
    return result


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 response reader for our own server, which always sends Content-Length."""
    header = await reader.readuntil(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


# ---- Kafka -----------------------------------------------------------------------------------------

def _create_topics(settings: KafkaSettings, names: list[str]) -> None:
    from confluent_kafka.admin import NewTopic

    client = kafka.admin(settings)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=settings.replication_factor)
         for name in names],
        operation_timeout=30,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - the message names the topic and the broker's reason
            raise UserError(f"could not create topic {name} at {settings.bootstrap_servers}: {exc}") from exc
    kafka.wait_for_topics(settings, names)


def _delete_topics(settings: KafkaSettings, names: list[str]) -> None:
    client = kafka.admin(settings)  # held in a variable: futures of a collected client never finish
    try:
        for future in client.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=60)
    except Exception:  # noqa: BLE001, S110 - best effort: a leftover bench topic harms nothing
        pass


def _baseline(settings: KafkaSettings, topic: str, items: list[dict[str, Any]], deadline: float) -> float:
    """Readings/s of a bare producer (same settings as ingest's) sending the same readings, pre-encoded and
    packed in the same envelopes ingest sends (forewarn.readings_wire), 500 readings at a time."""
    now_ms = int(time.time() * 1000)
    encoded = [(str(item.get("machine_id", "")), orjson.dumps({**item, "ingested_at": now_ms})) for item in items]
    partitions = len(kafka.admin(settings).list_topics(topic, timeout=10).topics[topic].partitions)
    messages = [
        (value, partition)
        for start in range(0, len(encoded), 500)
        for partition, value, _ in pack(encoded[start:start + 500], partitions)
    ]
    producer = kafka.producer(settings)
    # Warm, like the ingest worker (connected since /readyz): metadata and connections are not timed.
    producer.produce(topic, messages[0][0], partition=messages[0][1])
    producer.flush(10)
    started = time.perf_counter()
    for number, (value, partition) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value, partition=partition)
                break
            except BufferError:
                producer.poll(0.01)
        if number % 1000 == 0:
            producer.poll(0)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - started
    if left:
        raise UserError(f"baseline producer left {left} messages unconfirmed; is the broker healthy?")
    return len(encoded) / elapsed


def _percentile_ms(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index] * 1000, 2)
