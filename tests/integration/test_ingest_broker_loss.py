"""The broker dies in the middle of a request: the answer is 503 with Retry-After, and every reading the
answer calls accepted really is in the topic (checked after the broker comes back).

This starts its own throwaway single-node broker (same code as ``forewarn stack up``, other ports and a
temporary folder) and kills it with SIGKILL, so the shared stack's broker is never touched.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from forewarn import kafka, topics
from forewarn.readings_wire import decode_value
from forewarn.services.ingest.app import create_app
from forewarn.services.ingest.publisher import KafkaPublisher, Outgoing
from forewarn.services.ingest.settings import DEV_API_KEY, IngestOptions, IngestSettings
from forewarn.settings import KafkaSettings
from forewarn.stack.config import StackOptions, StackSettings
from forewarn.stack.manager import LocalStack
from forewarn.stack.process import free_port

pytestmark = pytest.mark.timeout(120)

READINGS_PER_REQUEST = 2000
KILL_DURING_REQUEST = 3


class ThrowawayBroker:
    def __init__(self, state_dir: Path) -> None:
        port = free_port()
        options = StackOptions(
            state_dir=state_dir, kafka_port=port, kafka_controller_port=free_port(), redis_port=free_port(),
            mlflow_port=free_port(), kafka_heap="256m", start_timeout_s=60,
        )
        kafka_settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", topic_partitions=2)
        self.stack = LocalStack(StackSettings(stack=options, kafka=kafka_settings))
        self.component = self.stack.components["kafka"]
        self.kafka_settings = kafka_settings

    def start(self) -> None:
        self.component.prepare()
        self.stack.tracker.start("kafka", self.component.argv(), cwd=self.stack.settings.state_dir)
        deadline = time.monotonic() + 60
        while not self.component.is_ready():
            if time.monotonic() > deadline or self.stack.tracker.record("kafka") is None:
                pytest.fail(f"throwaway broker did not start:\n{self.stack.tracker.log_tail('kafka')}")
            time.sleep(0.3)

    def kill(self) -> None:
        record = self.stack.tracker.record("kafka")
        assert record is not None
        os.killpg(record.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        deadline = time.monotonic() + 10
        while self.stack.tracker.record("kafka") is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.stack.tracker.stop("kafka", timeout_s=10)


class KillDuringPublish(KafkaPublisher):
    """Kills the broker during the n-th request, as soon as part of its readings is in the topic.

    Small producer batches spread a request over many produce requests, so the kill usually lands
    between them and the answer holds both confirmed and unconfirmed readings.
    """

    def __init__(self, broker: ThrowawayBroker, n: int, delivery_timeout_s: float) -> None:
        def small_batches(settings: KafkaSettings, **overrides: Any) -> Any:
            return kafka.producer(settings, **{**overrides, "batch.num.messages": 50, "linger.ms": 0})

        super().__init__(broker.kafka_settings, delivery_timeout_s, producer_factory=small_batches)
        self.broker, self.n, self.calls = broker, n, 0
        self.killer: threading.Thread | None = None
        self.watermarks = kafka.consumer(broker.kafka_settings, group_id="watermarks", log_level=0)

    def _stored(self) -> int:
        from confluent_kafka import TopicPartition

        return sum(
            self.watermarks.get_watermark_offsets(TopicPartition(self.readings_topic, p), timeout=2, cached=False)[1]
            for p in range(self.broker.kafka_settings.topic_partitions)
        )

    async def publish(self, outgoing: Outgoing) -> Any:
        self.calls += 1
        if self.calls == self.n:
            stored_before = self._stored()
            self.killer = threading.Thread(target=self._kill_when_some_are_stored, args=(stored_before,))
            self.killer.start()
        return await super().publish(outgoing)

    def _kill_when_some_are_stored(self, stored_before: int) -> None:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and self._stored() == stored_before:
            time.sleep(0.001)
        self.broker.kill()
        self.watermarks.close()


def test_broker_killed_mid_request_gives_503_and_never_overstates(tmp_path: Path, uid: str) -> None:
    broker = ThrowawayBroker(tmp_path / "stack")
    broker.start()
    try:
        broker.stack.ensure_topics([topics.SENSOR_READINGS, topics.SENSOR_READINGS_DLQ])
        settings = IngestSettings(environment="development", kafka=broker.kafka_settings,
                                  ingest=IngestOptions(delivery_timeout_s=3, retry_after_s=2))
        publisher = KillDuringPublish(broker, KILL_DURING_REQUEST, delivery_timeout_s=3)
        answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        with TestClient(create_app(settings, publisher)) as client:
            for number in range(KILL_DURING_REQUEST + 2):
                now_ms = int(time.time() * 1000)
                batch = [{"machine_id": f"r{number}-{i}", "machine_type": "pump", "ts": now_ms,
                          "values": {"temperature": 50.0 + i % 7}} for i in range(READINGS_PER_REQUEST)]
                answer = client.post("/v1/readings", content=orjson.dumps(batch),
                                     headers={"X-API-Key": DEV_API_KEY, "Content-Type": "application/json"})
                answers.append((number, answer.json(), dict(answer.headers)))
                assert answer.status_code in (200, 503), answer.text
                if number >= KILL_DURING_REQUEST - 1 and answer.status_code == 503:
                    break
            assert publisher.killer is not None
            publisher.killer.join()
        statuses = [503 if "retry_indexes" in body else 200 for _n, body, _h in answers]
        assert statuses[: KILL_DURING_REQUEST - 1] == [200] * (KILL_DURING_REQUEST - 1)
        assert 503 in statuses
        for (_n, body, headers), status in zip(answers, statuses, strict=True):
            if status == 503:
                assert headers["retry-after"] == "2"
                assert sorted(body["accepted_indexes"] + body["retry_indexes"]) == list(range(READINGS_PER_REQUEST))
                assert body["accepted"] == len(body["accepted_indexes"])

        broker.start()  # same folder: the log survives the crash
        in_topic = _machine_ids(broker.kafka_settings, topics.SENSOR_READINGS)
        for (number, body, _h), status in zip(answers, statuses, strict=True):
            accepted = range(READINGS_PER_REQUEST) if status == 200 else body["accepted_indexes"]
            missing = [i for i in accepted if f"r{number}-{i}" not in in_topic]
            assert not missing, f"request {number}: {len(missing)} readings reported accepted are not in the topic"
    finally:
        broker.stop()


def _machine_ids(settings: KafkaSettings, topic: str) -> set[str]:
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(settings, group_id=f"check-{time.monotonic_ns()}")
    try:
        partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
        high = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen: set[str] = set()
        position = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + 30
        while any(position[p] < high[p] for p in partitions) and time.monotonic() < deadline:
            for message in consumer.consume(5000, timeout=0.5):
                if message.error() is None:
                    seen.update(reading["machine_id"] for reading in decode_value(message.value()))
                    position[message.partition()] = message.offset() + 1
        return seen
    finally:
        consumer.close()
