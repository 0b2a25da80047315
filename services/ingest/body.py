"""Request bodies -> batch items: a JSON array, or NDJSON (one reading per line).

orjson parses; the standard library is the fallback for what orjson refuses but a sender may well
produce (``NaN``/``Infinity`` as Python's json writes them, integers beyond 64 bits), so such readings
are rejected one by one with a reason instead of failing the whole batch. A whole-body problem raises
:class:`BodyError` with the HTTP status and a message that says what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

JSON = "application/json"
NDJSON = "application/x-ndjson"
# application/ndjson is the newer spelling of the same format; accepted, documented as x-ndjson.
MEDIA_TYPES = {JSON: JSON, NDJSON: NDJSON, "application/ndjson": NDJSON}


class BodyError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True, slots=True)
class Malformed:
    """An NDJSON line that is not JSON: rejected on its own, the rest of the batch goes on."""

    raw: str
    error: str


def media_type(content_type: str | None) -> str:
    """The canonical media type of a Content-Type header, or raise 415."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    canonical = MEDIA_TYPES.get(base)
    if canonical is None:
        shown = f"'{base}'" if base else "no Content-Type"
        raise BodyError(
            415,
            "unsupported_media_type",
            f"{shown} is not supported; send a JSON array with Content-Type: {JSON}, "
            f"or one reading per line with Content-Type: {NDJSON}",
        )
    return canonical


def parse_batch(body: bytes, kind: str, max_readings: int) -> list[tuple[int, Any]]:
    """(index, item) for every reading in the body; for NDJSON the index is the 0-based line number."""
    items = _parse_ndjson(body, max_readings) if kind == NDJSON else _parse_array(body, max_readings)
    if not items:
        raise BodyError(400, "empty_batch", "the batch holds no readings; send at least one")
    return items


def _parse_array(body: bytes, max_readings: int) -> list[tuple[int, Any]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        data = _lenient_loads(body, exc)
    if type(data) is not list:
        raise BodyError(
            400,
            "malformed_body",
            f"the body must be a JSON array of readings (got a JSON {_kind(data)}); for one reading send "
            f"[{{...}}], or use Content-Type: {NDJSON} with one reading per line",
        )
    _check_count(len(data), max_readings)
    return list(enumerate(data))


def _lenient_loads(body: bytes, error: orjson.JSONDecodeError) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BodyError(
            400,
            "malformed_body",
            f"the body is not valid JSON ({error}); send a JSON array of readings encoded as UTF-8",
        ) from None


def _parse_ndjson(body: bytes, max_readings: int) -> list[tuple[int, Any]]:
    lines = body.split(b"\n")
    count = sum(1 for line in lines if line.strip())
    _check_count(count, max_readings)
    items: list[tuple[int, Any]] = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            items.append((number, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            try:
                items.append((number, json.loads(line)))
            except (ValueError, RecursionError):
                text = line.decode("utf-8", errors="replace")
                items.append((number, Malformed(text, f"line {number} is not valid JSON ({exc})")))
    return items


def _check_count(count: int, max_readings: int) -> None:
    if count > max_readings:
        raise BodyError(
            413,
            "too_many_readings",
            f"{count} readings in one request; at most {max_readings} are allowed: split the batch",
        )


def _kind(value: Any) -> str:
    return {dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
