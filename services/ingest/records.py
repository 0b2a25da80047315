"""What ingest writes to Kafka; the JSON Schema of both is ``docs/schemas/sensor-reading.json``.

sensor.readings, key = machine_id (UTF-8), value = compact JSON::

    {"machine_id": "pump-0007", "machine_type": "pump", "ts": 1769860800000,
     "values": {"temperature": 61.5}, "site": "plant-a", "ingested_at": 1769860800123}

``ts`` is event time and ``ingested_at`` the ingest server's clock when it accepted the request, both
epoch milliseconds; ``ingested_at`` is there to measure pipeline latency downstream.

sensor.readings.dlq, key = request id, value = ``{"request_id", "index", "reason", "message", "raw",
"ingested_at"}`` where ``raw`` is the rejected item as JSON text (so NaN and giant integers survive),
cut to :data:`MAX_RAW_CHARS` characters with ``raw_truncated`` set when longer.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from forewarn.reading_check import Rejection

from .body import Malformed

MAX_RAW_CHARS = 65_536  # far below Kafka's 1 MB message limit, so a dead letter always fits


def encode_reading(reading: dict[str, Any], ingested_at: int) -> tuple[bytes, bytes]:
    """(key, value) of a validated reading. Raises UnicodeEncodeError/orjson.JSONEncodeError on text
    that is not valid Unicode (lone surrogates sent as JSON escapes)."""
    reading["ingested_at"] = ingested_at
    return reading["machine_id"].encode(), orjson.dumps(reading)


def encode_dead_letter(request_id: str, index: int, item: Any, rejection: Rejection, ingested_at: int) -> bytes:
    raw = item.raw if type(item) is Malformed else _json_text(item)
    record: dict[str, Any] = {
        "request_id": request_id,
        "index": index,
        "reason": rejection.reason.value,
        "message": rejection.message,
        "raw": raw[:MAX_RAW_CHARS],
        "ingested_at": ingested_at,
    }
    if len(raw) > MAX_RAW_CHARS:
        record["raw_truncated"] = True
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:  # text with lone surrogates: escape it
        return json.dumps(record, ensure_ascii=True).encode()


def _json_text(item: Any) -> str:
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError, TypeError):
        return repr(item)[:MAX_RAW_CHARS]
