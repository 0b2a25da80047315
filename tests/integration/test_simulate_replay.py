"""simulate and replay deliver exactly what they report, into the real Kafka (and a real HTTP server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from forewarn import kafka
from forewarn.assets import load_asset_config
from forewarn.readings_wire import decode_value, partition_for
from forewarn.schemas import GroundTruthEvent, Reading
from forewarn.sim.options import HOUR_MS, SimOptions
from forewarn.sim.plant import PlantSimulator

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
START = "2026-01-01T00:00:00Z"
START_MS = 1_767_225_600_000


def forewarn(kafka_settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers}
    done = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", *args, "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


def consume_all(
    kafka_settings, topic: str, expected: int, timeout_s: float = 30
) -> list[tuple[bytes, bytes]]:
    from forewarn import kafka

    consumer = kafka.consumer(kafka_settings, group_id=f"read-{topic}")
    consumer.subscribe([topic])
    messages: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append((message.key(), message.value()))
    finally:
        consumer.close()
    return messages


def test_simulate_to_kafka_delivers_exactly_the_simulated_readings(kafka_settings, topic_factory) -> None:
    readings_topic = topic_factory("readings", partitions=4)
    truth_topic = topic_factory("truth")
    options = SimOptions(machines=20, start_ms=START_MS, duration_ms=HOUR_MS, seed=9, degrading_fraction=0.5)
    expected = sum(len(c.batch) for c in PlantSimulator(load_asset_config("plant"), options).chunks())
    expected_events = sum(len(c.events) for c in PlantSimulator(load_asset_config("plant"), options).chunks())

    began = time.monotonic()
    done = forewarn(
        kafka_settings,
        "simulate",
        "--to",
        "kafka",
        "--topic",
        readings_topic,
        "--truth-topic",
        truth_topic,
        "-n",
        "20",
        "--duration",
        "1h",
        "--seed",
        "9",
        "--degrading-fraction",
        "0.5",
        "--start",
        START,
    )
    assert f"{expected:,}" in done.stderr
    assert 60_000 < expected <= 72_000  # 20 machines x 3600 s, less losses and downtime
    messages = kafka.read_all(kafka_settings, readings_topic)
    readings = [(m.partition(), r) for m in messages for r in decode_value(m.value())]
    assert len(readings) == expected
    for partition, raw in readings[:: max(1, expected // 2000)]:
        reading = Reading.model_validate(raw)
        assert partition == partition_for(reading.machine_id, 4)  # envelopes keep machines in their partition
        assert START_MS <= reading.ts < START_MS + HOUR_MS
    assert kafka.message_count(kafka_settings, truth_topic) == expected_events > 0
    events = [
        GroundTruthEvent.model_validate_json(v)
        for _, v in consume_all(kafka_settings, truth_topic, expected_events)
    ]
    assert {e.kind for e in events} <= {"failure", "maintenance", "degradation_start"}
    assert time.monotonic() - began < 60


def test_replay_fd001_train_into_kafka(kafka_settings, topic_factory) -> None:
    path = SHARED_DATA / "cmapss" / "train_FD001.txt"
    if not path.is_file():
        pytest.skip(f"C-MAPSS FD001 not found at {path}")
    readings_topic = topic_factory("fd001", partitions=4)
    truth_topic = topic_factory("fd001truth")
    done = forewarn(
        kafka_settings,
        "replay",
        str(path),
        "--config",
        "cmapss",
        "--topic",
        readings_topic,
        "--truth-topic",
        truth_topic,
        "--start",
        START,
    )
    assert "20,631" in done.stderr
    assert kafka.count_readings(kafka_settings, readings_topic) == 20_631
    assert kafka.message_count(kafka_settings, truth_topic) == 100
    events = [
        GroundTruthEvent.model_validate_json(v) for _, v in consume_all(kafka_settings, truth_topic, 100)
    ]
    assert len({e.machine_id for e in events}) == 100 and {e.kind for e in events} == {"failure"}
    readings = [
        Reading.model_validate(r)
        for m in kafka.read_all(kafka_settings, readings_topic)
        for r in decode_value(m.value())
    ]
    last = {}
    for reading in readings:
        last[reading.machine_id] = max(last.get(reading.machine_id, 0), reading.ts)
    assert all(last[e.machine_id] == e.ts for e in events)  # failure at each engine's last cycle
    assert readings[0].machine_type == "turbofan" and len(readings[0].values) == 24


class _Ingest(BaseHTTPRequestHandler):
    """Answers like forewarn's ingest API; with ``flaky`` set, every other request stores only half of
    the batch and asks for the rest again (503 + retry_indexes), as ingest does when Kafka lags."""

    received: list[dict] = []
    flaky = False
    requests = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("x-api-key") != "sekrit":
            self.send_response(401)
            self.end_headers()
            return
        if self.headers["content-type"] == "application/x-ndjson":
            items = [orjson.loads(line) for line in body.splitlines() if line]
        else:
            items = orjson.loads(body)
        cls = type(self)
        cls.requests += 1
        if cls.flaky and cls.requests % 2 == 1 and len(items) > 1:
            half = len(items) // 2
            cls.received.extend(items[:half])
            status, reply_doc = (
                503,
                {
                    "request_id": "r",
                    "error": "kafka_unavailable",
                    "message": "later",
                    "accepted": half,
                    "accepted_indexes": list(range(half)),
                    "retry_indexes": list(range(half, len(items))),
                    "rejected": [],
                },
            )
        else:
            cls.received.extend(items)
            status, reply_doc = 200, {"request_id": "r", "accepted": len(items), "rejected": []}
        reply = json.dumps(reply_doc).encode()
        self.send_response(status)
        if status == 503:
            self.send_header("retry-after", "0")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        return None


@pytest.mark.parametrize(("body_format", "flaky"), [("ndjson", False), ("json", True)])
def test_simulate_over_http_posts_every_reading_once_with_the_api_key(
    kafka_settings, topic_factory, body_format: str, flaky: bool
) -> None:
    _Ingest.received, _Ingest.flaky, _Ingest.requests = [], flaky, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/readings"
        done = forewarn(
            kafka_settings,
            "simulate",
            "--to",
            "http",
            url,
            "--api-key",
            "sekrit",
            "--format",
            body_format,
            "--truth-topic",
            topic_factory("truth"),
            "-n",
            "5",
            "--duration",
            "10m",
            "--interval",
            "2s",
            "--start",
            START,
        )
    finally:
        server.shutdown()
    count = len(_Ingest.received)
    assert count > 1000 and f"{count:,}" in done.stderr
    assert len({(r["machine_id"], r["ts"]) for r in _Ingest.received}) == count  # none sent twice
    assert re.search(rf"ingest accepted\W+{count:,}\b", done.stderr)
    if flaky:
        assert _Ingest.requests > count / 500 * 1.4  # the retries happened
    for item in _Ingest.received[:50]:
        Reading.model_validate(item)
