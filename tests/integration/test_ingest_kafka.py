"""Ingest against the real broker: exact counts in sensor.readings and the DLQ, each dead letter with its
reason. Every test has its own topic prefix, so the counts are exact."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from forewarn import kafka, topics
from forewarn.readings_wire import decode_value, partition_for
from forewarn.services.ingest.app import create_app
from forewarn.services.ingest.publisher import KafkaPublisher
from forewarn.services.ingest.settings import DEV_API_KEY, IngestOptions, IngestSettings
from forewarn.settings import KafkaSettings

KEY = {"X-API-Key": DEV_API_KEY}
BREAKERS = {
    "unknown_sensor": lambda item: item["values"].update(no_such_sensor=1.0),
    "not_finite": lambda item: item["values"].update(temperature=math.nan),
    "out_of_range": lambda item: item["values"].update(vibration=1000.0),
    "bad_timestamp": lambda item: item.update(ts="31/01/2026 12:00"),
    "missing_field": lambda item: item.pop("values"),
    "unknown_machine_type": lambda item: item.update(machine_type="turbine"),
}


@pytest.fixture
def ingest_settings(stack: Any, uid: str) -> IngestSettings:
    prefix = f"test.{uid}."
    stack.ensure_topics([prefix + topics.SENSOR_READINGS, prefix + topics.SENSOR_READINGS_DLQ])
    kafka_settings = stack.settings.kafka.model_copy(update={"topic_prefix": prefix})
    return IngestSettings(environment="development", asset_config="plant", kafka=kafka_settings,
                          ingest=IngestOptions(delivery_timeout_s=15))


@pytest.fixture
def client(ingest_settings: IngestSettings) -> Iterator[TestClient]:
    publisher = KafkaPublisher(ingest_settings.kafka, ingest_settings.ingest.delivery_timeout_s)
    with TestClient(create_app(ingest_settings, publisher)) as test_client:
        yield test_client


def batch_of_1000_with_37_invalid(uid: str) -> tuple[list[dict[str, Any]], dict[int, str]]:
    now_ms = int(time.time() * 1000)
    items: list[dict[str, Any]] = []
    broken: dict[int, str] = {}
    kinds = list(BREAKERS)
    for i in range(1000):
        item = {"machine_id": f"{uid}-{i:04d}", "machine_type": "pump", "ts": now_ms - 1000 + i,
                "values": {"temperature": 55.0, "vibration": 2.5, "current": 110.0}, "site": "test"}
        if i % 27 == 13:  # 37 of 1000, spread over the batch
            kind = kinds[len(broken) % len(kinds)]
            BREAKERS[kind](item)
            broken[i] = kind
        items.append(item)
    assert len(broken) == 37
    return items, broken


def consume_all(settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    consumer = kafka.consumer(settings, group_id=f"test-{topic}")
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(messages) < expected:
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
        # A short extra look: more than expected would be a duplicate.
        messages.extend(consumer.consume(1000, timeout=1.0))
    finally:
        consumer.close()
    return messages


@pytest.mark.parametrize("media_type", ["application/json", "application/x-ndjson"])
def test_1000_readings_37_invalid_land_exactly(
    client: TestClient, ingest_settings: IngestSettings, uid: str, media_type: str
) -> None:
    items, broken = batch_of_1000_with_37_invalid(uid)
    # json.dumps (not orjson) so the NaN goes out the way Python senders write it.
    if media_type == "application/json":
        body = json.dumps(items).encode()
    else:
        body = "\n".join(json.dumps(item) for item in items).encode()

    answer = client.post("/v1/readings", content=body, headers={**KEY, "Content-Type": media_type})

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["accepted"] == 963
    assert {r["index"]: r["reason"] for r in result["rejected"]} == broken

    settings = ingest_settings.kafka
    envelopes = kafka.read_all(settings, settings.topic(topics.SENSOR_READINGS))
    readings = [(m.partition(), r) for m in envelopes for r in decode_value(m.value())]
    dead = consume_all(settings, settings.topic(topics.SENSOR_READINGS_DLQ), 37)
    assert len(readings) == 963 and len(dead) == 37

    stored = {value["machine_id"]: value for _, value in readings}
    assert set(stored) == {items[i]["machine_id"] for i in range(1000) if i not in broken}
    assert all("ingested_at" in value for value in stored.values())
    topic = settings.topic(topics.SENSOR_READINGS)
    partitions = len(kafka.admin(settings).list_topics(topic, timeout=10).topics[topic].partitions)
    assert all(p == partition_for(value["machine_id"], partitions) for p, value in readings)

    letters = [orjson.loads(message.value()) for message in dead]
    assert {letter["index"]: letter["reason"] for letter in letters} == broken
    assert all(letter["message"] and letter["raw"] for letter in letters)
    assert {letter["request_id"] for letter in letters} == {result["request_id"]}


def test_readyz_sees_the_broker_and_the_topics(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["ready"] is True


def test_readyz_fails_when_the_topics_are_missing(stack: Any, uid: str) -> None:
    kafka_settings = stack.settings.kafka.model_copy(update={"topic_prefix": f"test.missing.{uid}."})
    settings = IngestSettings(environment="development", kafka=kafka_settings)
    with TestClient(create_app(settings, KafkaPublisher(kafka_settings, 5))) as test_client:
        answer = test_client.get("/readyz")
    assert answer.status_code == 503
    assert "topics missing" in answer.json()["reason"]
