"""How readings travel on ``sensor.readings``: one reading per message, or an envelope of many.

A message value is either one reading (a JSON object) or an envelope: a JSON array of readings that all
belong to the partition the message is in. Envelopes exist for throughput: a streaming framework pays a
fixed cost per Kafka message (faust-streaming about 60 µs on this machine, i.e. a ceiling near 15k
messages/s per worker), and an envelope of a few hundred readings pays it once. Producers we control
(ingest, the simulator) send envelopes; plant systems may send either.

Readings of one machine must stay in one partition, in order, whichever form they travel in, so the
partition of a machine is the Java client's: ``murmur2(machine_id) % partitions`` (librdkafka's
``murmur2_random`` partitioner computes the same for keyed messages).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson

from forewarn.json_envelope import MAX_ENVELOPE_BYTES, array_runs, decode_value, join_array

__all__ = ["MAX_ENVELOPE_BYTES", "decode_value", "envelopes", "murmur2", "pack", "partition_for"]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``), as an unsigned 32-bit value."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    full = length - length % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    if tail >= 3:
        h ^= data[full + 2] << 16
    if tail >= 2:
        h ^= data[full + 1] << 8
    if tail >= 1:
        h ^= data[full]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


@lru_cache(maxsize=1_000_000)
def partition_for(machine_id: str, partitions: int) -> int:
    return (murmur2(machine_id.encode()) & 0x7FFFFFFF) % partitions


def envelopes(readings: Iterable[dict[str, Any]], partitions: int,
              max_bytes: int = MAX_ENVELOPE_BYTES) -> list[tuple[int, bytes, list[int]]]:
    """(partition, JSON array, positions of its readings in the input) for each envelope, order kept."""
    return pack([(r["machine_id"], orjson.dumps(r)) for r in readings], partitions, max_bytes)


def pack(encoded: list[tuple[str, bytes]], partitions: int,
         max_bytes: int = MAX_ENVELOPE_BYTES) -> list[tuple[int, bytes, list[int]]]:
    """Already-encoded readings ``(machine_id, JSON)`` -> envelopes, as :func:`envelopes`."""
    groups: dict[int, list[int]] = {}
    for position, (machine_id, _) in enumerate(encoded):
        groups.setdefault(partition_for(machine_id, partitions), []).append(position)
    out = []
    for partition, positions in groups.items():
        for start, stop in array_runs([len(encoded[p][1]) for p in positions], max_bytes):
            run = positions[start:stop]
            out.append((partition, join_array([encoded[p][1] for p in run]), run))
    return out
