"""Snapshots of the features service's state in Redis, one hash per source partition.

    {prefix}:fstate:{app id}:{topic}:{partition}   hash
        applied          offset of the last reading applied to the state below
        sig:{type}       layout signature of the engine rows of that machine type
        m:{type}:{id}    the machine's engine row (packed float64)

A snapshot is written in one MULTI/EXEC, so the offset and the rows always agree. If Redis loses the
hash, the partition is rebuilt by replaying the source topic from its start (within retention).

Not to be confused with ``forewarn.features.snapshot``: that one turns an engine's exported state into
bytes; this one is where the features service keeps its partitions' state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from forewarn.services.features.ports import EngineStates

if TYPE_CHECKING:
    import redis


class RedisSnapshotStore:
    def __init__(self, client: redis.Redis, prefix: str, app_id: str, topic: str) -> None:
        self.client = client
        self.base = f"{prefix}:fstate:{app_id}:{topic}"

    def key(self, partition: int) -> str:
        return f"{self.base}:{partition}"

    def save(self, partition: int, applied: int, states: EngineStates) -> None:
        mapping: dict[str, bytes | str | int] = {"applied": applied}
        for machine_type, state in states.items():
            mapping[f"sig:{machine_type}"] = str(state["signature"])
            rows = np.ascontiguousarray(state["rows"], dtype="<f8")
            for machine_id, row in zip(state["machine_ids"].tolist(), rows, strict=True):
                mapping[f"m:{machine_type}:{machine_id}"] = row.tobytes()
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(partition), mapping=mapping)  # type: ignore[arg-type]
        pipe.execute()

    def load(self, partition: int) -> tuple[int, EngineStates]:
        """(applied offset or -1, states by machine type)."""
        raw = self.client.hgetall(self.key(partition))
        if not raw:
            return -1, {}
        applied = int(raw.pop(b"applied", b"-1"))
        signatures = {k[4:].decode(): v.decode() for k, v in raw.items() if k.startswith(b"sig:")}
        ids: dict[str, list[str]] = {}
        rows: dict[str, list[np.ndarray]] = {}
        for key, value in raw.items():
            if not key.startswith(b"m:"):
                continue
            machine_type, machine_id = key[2:].decode().split(":", 1)
            ids.setdefault(machine_type, []).append(machine_id)
            rows.setdefault(machine_type, []).append(np.frombuffer(value, dtype="<f8"))
        states = {
            machine_type: {
                "signature": np.array(signatures[machine_type]),
                "machine_ids": np.array(ids[machine_type]),
                "rows": np.vstack(rows[machine_type]),
            }
            for machine_type in ids
        }
        return applied, states

    def missing(self, partitions: Sequence[int]) -> set[int]:
        """One pipelined round trip: which partitions' hashes Redis does not hold."""
        pipe = self.client.pipeline(transaction=False)
        for partition in partitions:
            pipe.exists(self.key(partition))
        return {p for p, present in zip(partitions, pipe.execute(), strict=True) if not present}

    def clear(self, partition: int) -> None:
        self.client.delete(self.key(partition))
