"""The HTTP contract of ingest, against an in-memory publisher (no Kafka)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from forewarn.schemas import Reading
from forewarn.services.ingest.app import create_app
from forewarn.services.ingest.publisher import InMemoryPublisher
from forewarn.services.ingest.settings import DEV_API_KEY, IngestOptions, IngestSettings

ROOT = Path(__file__).resolve().parents[2]
KEY = {"X-API-Key": DEV_API_KEY}


def settings(**options: Any) -> IngestSettings:
    return IngestSettings(environment="development", asset_config="plant", ingest=IngestOptions(**options))


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
def client(publisher: InMemoryPublisher) -> Iterator[TestClient]:
    with TestClient(create_app(settings(max_body_bytes=64 * 1024, max_readings_per_request=50), publisher)) as c:
        yield c


def reading(i: int = 0, **changes: Any) -> dict[str, Any]:
    item = {
        "machine_id": f"pump-{i:04d}", "machine_type": "pump", "ts": int(time.time() * 1000) - 1000,
        "values": {"temperature": 60.0 + i % 10, "vibration": 3.5, "rotational_speed": 1450},
    }
    item.update(changes)
    return item


def schema_validator(definition: str) -> Any:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    document = json.loads((ROOT / "docs" / "schemas" / "sensor-reading.json").read_text())
    return jsonschema_rs.validator_for({**document, "$ref": f"#/$defs/{definition}"})


def test_valid_and_invalid_readings_are_split_and_answered(client: TestClient, publisher: InMemoryPublisher) -> None:
    batch = [reading(0), reading(1, values={"temperature": 999.0}), reading(2, ts="2026-01-31T12:00:00Z"),
             reading(3, machine_type="turbine"), {"machine_id": "x"}]
    answer = client.post("/v1/readings", json=batch, headers={**KEY, "X-Request-ID": "req-42"})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["request_id"] == "req-42" and answer.headers["X-Request-ID"] == "req-42"
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, "out_of_range"), (3, "unknown_machine_type"), (4, "missing_field")]
    assert all(r["message"] for r in body["rejected"])

    assert [key for key, _ in publisher.readings] == [b"pump-0000", b"pump-0002"]
    stored = [orjson.loads(value) for _, value in publisher.readings]
    assert stored[1]["ts"] == 1769860800000
    assert stored[0]["values"]["rotational_speed"] == 1450.0
    validate_reading = schema_validator("SensorReading")
    for record in stored:
        validate_reading.validate(record)
        assert abs(record["ingested_at"] - time.time() * 1000) < 60_000
        # The wire format is schemas.Reading plus the ingest timestamp.
        Reading.model_validate({k: v for k, v in record.items() if k != "ingested_at"})

    validate_dead_letter = schema_validator("DeadLetter")
    letters = [orjson.loads(value) for _, value in publisher.dead_letters]
    assert {key for key, _ in publisher.dead_letters} == {b"req-42"}
    for letter in letters:
        validate_dead_letter.validate(letter)
    assert [(d["index"], d["reason"], d["request_id"]) for d in letters] == [
        (1, "out_of_range", "req-42"), (3, "unknown_machine_type", "req-42"), (4, "missing_field", "req-42")]
    assert json.loads(letters[0]["raw"]) == batch[1]


def test_ndjson_indexes_are_line_numbers_and_bad_lines_go_to_the_dlq(
    client: TestClient, publisher: InMemoryPublisher
) -> None:
    lines = [json.dumps(reading(0)), "", json.dumps(reading(1)), "{not json", json.dumps(reading(2)) + "\r", ""]
    answer = client.post("/v1/readings", content="\n".join(lines).encode(),
                         headers={**KEY, "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3
    assert [(r["index"], r["reason"]) for r in answer.json()["rejected"]] == [(3, "malformed_json")]
    assert orjson.loads(publisher.dead_letters[0][1])["raw"] == "{not json"


def test_nan_written_by_a_python_sender_is_one_rejection_not_a_bad_batch(
    client: TestClient, publisher: InMemoryPublisher
) -> None:
    body = json.dumps([reading(0), reading(1, values={"temperature": math.nan})])  # json writes NaN
    answer = client.post("/v1/readings", content=body, headers={**KEY, "Content-Type": "application/json"})
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    assert answer.json()["rejected"][0]["reason"] == "not_finite"
    assert "NaN" in orjson.loads(publisher.dead_letters[0][1])["raw"]


def test_unconfirmed_readings_mean_503_saying_exactly_which_are_stored() -> None:
    publisher = InMemoryPublisher(fail_readings={1, 3})
    with TestClient(create_app(settings(retry_after_s=7), publisher)) as client:
        batch = [reading(i) for i in range(5)] + [reading(5, values={"nope": 1.0})]
        answer = client.post("/v1/readings", json=batch, headers=KEY)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "7"
    body = answer.json()
    assert body["accepted_indexes"] == [0, 2, 4] and body["accepted"] == 3
    assert body["retry_indexes"] == [1, 3]
    assert [r["index"] for r in body["rejected"]] == [5]
    assert "resend" in body["message"].lower()
    assert len(publisher.readings) == 3


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_requests_without_a_valid_key_are_401(client: TestClient, headers: dict[str, str],
                                              publisher: InMemoryPublisher) -> None:
    answer = client.post("/v1/readings", json=[reading()], headers=headers)
    assert answer.status_code == 401
    assert "X-API-Key" in answer.json()["message"]
    assert publisher.readings == []


def test_configured_keys_replace_the_dev_key() -> None:
    app = create_app(settings(api_keys=["k-one", "k-two"]), InMemoryPublisher())
    with TestClient(app) as client:
        assert client.post("/v1/readings", json=[reading()], headers={"X-API-Key": "k-two"}).status_code == 200
        assert client.post("/v1/readings", json=[reading()], headers=KEY).status_code == 401


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml", "multipart/form-data"])
def test_wrong_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = dict(KEY)
    if content_type:
        headers["Content-Type"] = content_type
    answer = client.post("/v1/readings", content=orjson.dumps([reading()]), headers=headers)
    assert answer.status_code == 415
    assert "application/json" in answer.json()["message"] and "application/x-ndjson" in answer.json()["message"]


def test_content_type_parameters_are_fine(client: TestClient) -> None:
    answer = client.post("/v1/readings", content=orjson.dumps([reading()]),
                         headers={**KEY, "Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 200


def test_too_large_body_is_413_with_or_without_content_length(client: TestClient) -> None:
    big = b"[" + b" " * (64 * 1024) + b"]"
    answer = client.post("/v1/readings", content=big, headers={**KEY, "Content-Type": "application/json"})
    assert answer.status_code == 413 and "split" in answer.json()["message"]

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to trust
        yield b"["
        for _ in range(70):
            yield b" " * 1024
        yield b"]"

    answer = client.post("/v1/readings", content=chunks(), headers={**KEY, "Content-Type": "application/json"})
    assert answer.status_code == 413


@pytest.mark.parametrize("kind", ["application/json", "application/x-ndjson"])
def test_too_many_readings_is_413(client: TestClient, kind: str, publisher: InMemoryPublisher) -> None:
    items = [reading(i) for i in range(51)]
    body = orjson.dumps(items) if kind == "application/json" else b"\n".join(orjson.dumps(i) for i in items)
    answer = client.post("/v1/readings", content=body, headers={**KEY, "Content-Type": kind})
    assert answer.status_code == 413
    assert "at most 50" in answer.json()["message"]
    assert publisher.readings == []


@pytest.mark.parametrize("body", [b"", b"{", b'{"machine_id": "x"}', b"[]", b"null", b"\xff\xfe[]", b"[1,]"])
def test_malformed_body_is_400(client: TestClient, body: bytes) -> None:
    answer = client.post("/v1/readings", content=body, headers={**KEY, "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in ("malformed_body", "empty_batch")
    assert answer.json()["message"]


def test_odd_but_valid_json_never_breaks_the_server(client: TestClient, publisher: InMemoryPublisher) -> None:
    body = (b'[{"machine_id": "\\ud800", "machine_type": "pump", "ts": 1, "values": {"current": 1}},'
            b' {"machine_id": "p", "machine_type": "pump", "ts": 1, "values": {"current": 123456789012345678901234}},'
            b' {"machine_id": "p", "machine_type": "pump", "ts": 1e400, "values": {"current": 1}}]')
    answer = client.post("/v1/readings", content=body, headers={**KEY, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert [r["reason"] for r in answer.json()["rejected"]] == ["invalid_field", "out_of_range", "bad_timestamp"]
    assert len(publisher.dead_letters) == 3


def test_operations_endpoints(client: TestClient, publisher: InMemoryPublisher) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    publisher.ready = False
    assert client.get("/readyz").status_code == 503
    client.post("/v1/readings", json=[reading(0), reading(1, values={"temperature": 1e9})], headers=KEY)
    metrics = client.get("/metrics").text
    assert "forewarn_ingest_readings_accepted_total" in metrics
    assert 'forewarn_ingest_readings_rejected_total{reason="out_of_range"}' in metrics
    assert "forewarn_ingest_request_duration_seconds_bucket" in metrics


def test_lifespan_starts_and_closes_the_publisher() -> None:
    publisher = InMemoryPublisher()
    with TestClient(create_app(settings(), publisher)):
        assert publisher.started and not publisher.closed
    assert publisher.closed


def test_openapi_documents_both_media_types_and_the_key(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/readings"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert operation["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == 50
    assert {"200", "400", "401", "413", "415", "503"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
