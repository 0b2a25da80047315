"""The envelope both ``sensor.readings`` and ``risk.scores`` use: a message value that is one JSON document,
or a JSON array of many (see readings_wire and scores_wire for why each topic has them).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_ENVELOPE_BYTES = 512_000  # well below Kafka's default 1 MB message limit


def array_runs(sizes: list[int], max_bytes: int, max_items: int | None = None) -> list[tuple[int, int]]:
    """Split encoded documents of these sizes, in order, into (start, stop) runs whose JSON array (brackets
    and commas counted) fits ``max_bytes`` and holds at most ``max_items``; a document larger alone is a run."""
    runs: list[tuple[int, int]] = []
    start, size = 0, 2
    for i, item_size in enumerate(sizes):
        full = size + item_size + 1 > max_bytes or (max_items is not None and i - start >= max_items)
        if full and i > start:
            runs.append((start, i))
            start, size = i, 2
        size += item_size + 1
    if start < len(sizes):
        runs.append((start, len(sizes)))
    return runs


def join_array(encoded: list[bytes]) -> bytes:
    return b"[" + b",".join(encoded) + b"]"


def decode_value(raw: bytes) -> list[Any]:
    """The documents in a message value (one or many), not validated. Raises orjson.JSONDecodeError."""
    value = orjson.loads(raw)
    return value if isinstance(value, list) else [value]
