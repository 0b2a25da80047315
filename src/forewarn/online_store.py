"""The online feature store: the latest feature vector of every machine, in Redis.

Key layout (also in docs/ONLINE_STORE.md):

    {prefix}:fv:{machine_id}   hash
        ts        event time (epoch ms) of the reading behind the vector
        version   feature-set version (forewarn.features.FEATURE_SET_VERSION)
        type      machine type
        site      site, or empty
        features  orjson object {feature name: value or null}

One key per machine keeps an on-demand read to a single HGETALL; the features travel as one field
because they are always read together and a single field is far cheaper than one field per feature
(hundreds) in both memory and CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import orjson

from forewarn.schemas import FeatureVector


class FeatureStore(Protocol):
    def write(self, vectors: Iterable[FeatureVector]) -> None: ...

    def read(self, machine_id: str) -> FeatureVector | None: ...


class RedisFeatureStore:
    def __init__(self, client, prefix: str = "fw") -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.prefix = prefix

    def key(self, machine_id: str) -> str:
        return f"{self.prefix}:fv:{machine_id}"

    def write(self, vectors: Iterable[FeatureVector]) -> None:
        """Pipelined; when one batch holds several vectors of a machine, only the latest is written."""
        latest: dict[str, FeatureVector] = {}
        for vector in vectors:
            current = latest.get(vector.machine_id)
            if current is None or vector.ts >= current.ts:
                latest[vector.machine_id] = vector
        if not latest:
            return
        pipe = self.client.pipeline(transaction=False)
        for vector in latest.values():
            pipe.hset(self.key(vector.machine_id), mapping=encode(vector))
        pipe.execute()

    def write_encoded(self, rows: dict[str, dict[str, bytes | str | int]]) -> None:
        """Fast path for the features service: rows already encoded, one per machine."""
        if not rows:
            return
        pipe = self.client.pipeline(transaction=False)
        for machine_id, mapping in rows.items():
            pipe.hset(self.key(machine_id), mapping=mapping)  # type: ignore[arg-type]
        pipe.execute()

    def read(self, machine_id: str) -> FeatureVector | None:
        raw = self.client.hgetall(self.key(machine_id))
        return decode(machine_id, raw) if raw else None


def encode(vector: FeatureVector) -> dict[str, bytes | str | int]:
    return {
        "ts": vector.ts,
        "version": vector.feature_set_version,
        "type": vector.machine_type,
        "site": vector.site or "",
        "features": orjson.dumps(vector.features),
    }


def decode(machine_id: str, raw: dict[bytes, bytes]) -> FeatureVector:
    return FeatureVector(
        machine_id=machine_id,
        machine_type=raw[b"type"].decode(),
        ts=int(raw[b"ts"]),
        feature_set_version=raw[b"version"].decode(),
        features=orjson.loads(raw[b"features"]),
        site=raw.get(b"site", b"").decode() or None,
    )
