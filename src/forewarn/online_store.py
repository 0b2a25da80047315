"""The online feature store: the latest feature vector of every machine, in Redis.

Key layout (the spec is docs/ONLINE_STORE.md):

    {prefix}:fv:{machine_id}     hash, one per machine
        ts        event time (epoch ms) of the reading behind the vector
        version   feature-set version
        type      machine type
        site      site, or empty
        names     id of the feature-name list (see below)
        values    the feature values as packed little-endian float64, NaN = missing

    {prefix}:fnames:{names id}   string: JSON list of feature names; the id is a hash of the list

Why packed values and a shared name list: a vector has one to two hundred features and the features
service rewrites thousands of machines a second; packed floats are 8 bytes a feature against ~20 as JSON,
and cost nothing to encode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson

from forewarn.schemas import FeatureVector


class PackedVector(NamedTuple):
    """A stored vector as written: values in the order of the name list ``names_ref`` identifies."""

    machine_type: str
    ts: int
    feature_set_version: str
    names_ref: str
    values: np.ndarray
    site: str | None


class FeatureStore(Protocol):
    def write(self, vectors: Iterable[FeatureVector]) -> None: ...

    def read(self, machine_id: str) -> FeatureVector | None: ...


def names_id(names: Sequence[str]) -> str:
    return hashlib.sha256(orjson.dumps(list(names))).hexdigest()[:16]


# One script call per chunk instead of one pipelined HSET per machine: the features service rewrites
# thousands of machines a second, and redis-py's per-command work (building, queueing and parsing the reply
# of each HSET) was most of the write's cost. A chunk bounds how long Redis is busy with one call.
WRITE_CHUNK = 1000
_WRITE_ROWS = """
-- KEYS[1]: the name list's key, KEYS[2..]: one hash per machine
-- ARGV: name list JSON, version, type, names id, then per machine: ts, site, packed values
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  local at = 5 + (i - 2) * 3
  redis.call('HSET', KEYS[i], 'ts', ARGV[at], 'version', ARGV[2], 'type', ARGV[3], 'site', ARGV[at + 1],
             'names', ARGV[4], 'values', ARGV[at + 2])
end
return #KEYS - 1
"""


class RedisFeatureStore:
    def __init__(self, client: Any, prefix: str = "fw") -> None:  # client: a redis.Redis
        self.client = client
        self.prefix = prefix
        self._known_names: dict[str, list[str]] = {}
        # redis-py loads the script again by itself when Redis answers NOSCRIPT (restarted empty).
        self._write_script = client.register_script(_WRITE_ROWS)

    def key(self, machine_id: str) -> str:
        return f"{self.prefix}:fv:{machine_id}"

    def names_key(self, names_ref: str) -> str:
        return f"{self.prefix}:fnames:{names_ref}"

    def write_rows(
        self,
        *,
        machine_type: str,
        feature_set_version: str,
        names: Sequence[str],
        machine_ids: Sequence[str],
        ts: Sequence[int],
        matrix: np.ndarray,
        sites: Sequence[str | None] | None = None,
    ) -> None:
        """Write one vector per row, pipelined. Rows must be one per machine (the latest)."""
        if not machine_ids:
            return
        ref = names_id(names)
        # Sent with every write (a few KB): a Redis restarted empty has the names back at the next write.
        names_json = orjson.dumps(list(names))
        packed = np.ascontiguousarray(matrix, dtype="<f8")
        ts_list = [int(t) for t in ts]
        for start in range(0, len(machine_ids), WRITE_CHUNK):
            stop = min(start + WRITE_CHUNK, len(machine_ids))
            keys = [self.names_key(ref), *(self.key(m) for m in machine_ids[start:stop])]
            args: list[object] = [names_json, feature_set_version, machine_type, ref]
            for i in range(start, stop):
                args += (ts_list[i], (sites[i] if sites else None) or "", packed[i].tobytes())
            self._write_script(keys=keys, args=args)

    def write(self, vectors: Iterable[FeatureVector]) -> None:
        latest: dict[str, FeatureVector] = {}
        for vector in vectors:
            current = latest.get(vector.machine_id)
            if current is None or vector.ts >= current.ts:
                latest[vector.machine_id] = vector
        for vector in latest.values():
            names = list(vector.features)
            values = np.array([[np.nan if v is None else v for v in vector.features.values()]], dtype=np.float64)
            self.write_rows(machine_type=vector.machine_type, feature_set_version=vector.feature_set_version,
                            names=names, machine_ids=[vector.machine_id], ts=[vector.ts], matrix=values,
                            sites=[vector.site])

    def read_packed(self, machine_ids: Sequence[str]) -> dict[str, PackedVector]:
        """The stored vectors of ``machine_ids`` (absent ones left out), in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for machine_id in machine_ids:
            pipe.hgetall(self.key(machine_id))
        found = {}
        for machine_id, raw in zip(machine_ids, pipe.execute(), strict=True):
            if raw:
                found[machine_id] = PackedVector(
                    machine_type=raw[b"type"].decode(), ts=int(raw[b"ts"]),
                    feature_set_version=raw[b"version"].decode(), names_ref=raw[b"names"].decode(),
                    values=np.frombuffer(raw[b"values"], dtype="<f8").copy(),
                    site=raw.get(b"site", b"").decode() or None,
                )
        return found

    def read(self, machine_id: str) -> FeatureVector | None:
        raw = self.client.hgetall(self.key(machine_id))
        if not raw:
            return None
        ref = raw[b"names"].decode()
        names = self._known_names.get(ref)
        if names is None:
            stored = self.client.get(self.names_key(ref))
            if stored is None:
                return None
            names = orjson.loads(stored)
            self._known_names[ref] = names
        values = np.frombuffer(raw[b"values"], dtype="<f8")
        return FeatureVector(
            machine_id=machine_id,
            machine_type=raw[b"type"].decode(),
            ts=int(raw[b"ts"]),
            feature_set_version=raw[b"version"].decode(),
            features={n: (None if v != v else float(v)) for n, v in zip(names, values.tolist(), strict=True)},
            site=raw.get(b"site", b"").decode() or None,
        )
