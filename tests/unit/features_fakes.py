"""In-memory stand-ins for the features worker's ports (services/features/ports.py), for unit tests.

They keep what the real ones keep, the way they keep it: the snapshot store merges a save into what the
partition already holds (a Redis HSET) and hands back copies (nothing shared with the engine), the online
store keeps one packed vector per machine, and the topic serves offset ranges in batches. ``wipe()`` is a
Redis that restarted empty; ``down`` makes every call fail as an unreachable Redis would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from forewarn.online_store import PackedVector, names_id
from forewarn.services.features.ports import EngineStates
from forewarn.services.features.processor import BatchOutput, SourceRecord


class StoreDown(Exception):
    """What the fake stores raise while ``down`` (redis.RedisError for the real ones)."""


class FakeSink:
    """Records every published batch; raises while ``failing`` (an undelivered batch)."""

    def __init__(self) -> None:
        self.published: list[BatchOutput] = []
        self.failing = False

    def publish(self, output: BatchOutput) -> None:
        if self.failing:
            raise RuntimeError("feature vectors not delivered")
        self.published.append(output)

    def vectors(self) -> list[tuple[int, str, int, np.ndarray]]:
        """(partition, machine id, ts, vector) of every published vector, in publishing order."""
        return [(partition, machine_id, int(block.ts[i]), block.matrix[i].copy())
                for output in self.published for partition, blocks in output.blocks.items()
                for block in blocks for i, machine_id in enumerate(block.machine_ids)]

    def rejects(self) -> list[tuple[int, int, str]]:
        return [(r.record.partition, r.record.offset, r.reason) for output in self.published for r in output.rejected]


class FakeOnlineStore:
    def __init__(self) -> None:
        self.vectors: dict[str, PackedVector] = {}
        self.writes = 0
        self.down = False

    def write_rows(self, *, machine_type: str, feature_set_version: str, names: Sequence[str],
                   machine_ids: Sequence[str], ts: Sequence[int], matrix: np.ndarray,
                   sites: Sequence[str | None] | None = None) -> None:
        if self.down:
            raise StoreDown("online store unreachable")
        ref = names_id(names)
        for i, machine_id in enumerate(machine_ids):
            self.vectors[machine_id] = PackedVector(machine_type, int(ts[i]), feature_set_version, ref,
                                                    np.array(matrix[i], dtype="<f8"), sites[i] if sites else None)
        self.writes += 1

    def read_packed(self, machine_ids: Sequence[str]) -> dict[str, PackedVector]:
        if self.down:
            raise StoreDown("online store unreachable")
        return {m: self.vectors[m]._replace(values=self.vectors[m].values.copy())
                for m in machine_ids if m in self.vectors}

    def wipe(self) -> None:
        self.vectors = {}


class FakeSnapshotStore:
    def __init__(self) -> None:
        # partition -> {"applied": int, "sig:{type}": str, "m:{type}:{id}": bytes}, as the Redis hash holds it
        self.hashes: dict[int, dict[str, Any]] = {}
        self.saves: list[tuple[int, int, int]] = []  # (partition, applied, machines) per save
        self.down = False

    def save(self, partition: int, applied: int, states: EngineStates) -> None:
        if self.down:
            raise StoreDown("snapshot store unreachable")
        fields = self.hashes.setdefault(partition, {})
        fields["applied"] = applied
        machines = 0
        for machine_type, state in states.items():
            fields[f"sig:{machine_type}"] = str(state["signature"])
            for machine_id, row in zip(state["machine_ids"].tolist(), state["rows"], strict=True):
                fields[f"m:{machine_type}:{machine_id}"] = np.ascontiguousarray(row, dtype="<f8").tobytes()
                machines += 1
        self.saves.append((partition, applied, machines))

    def load(self, partition: int) -> tuple[int, EngineStates]:
        if self.down:
            raise StoreDown("snapshot store unreachable")
        fields = self.hashes.get(partition)
        if not fields:
            return -1, {}
        ids: dict[str, list[str]] = {}
        rows: dict[str, list[np.ndarray]] = {}
        for key, value in fields.items():
            if key.startswith("m:"):
                machine_type, machine_id = key[2:].split(":", 1)
                ids.setdefault(machine_type, []).append(machine_id)
                rows.setdefault(machine_type, []).append(np.frombuffer(value, dtype="<f8"))
        states = {t: {"signature": np.array(fields[f"sig:{t}"]), "machine_ids": np.array(ids[t]),
                      "rows": np.vstack(rows[t])} for t in ids}
        return int(fields["applied"]), states

    def missing(self, partitions: Sequence[int]) -> set[int]:
        if self.down:
            raise StoreDown("snapshot store unreachable")
        return {p for p in partitions if p not in self.hashes}

    def wipe(self) -> None:
        self.hashes = {}


class FakeTopic:
    """A source topic's partitions as lists of records; also the worker's source reader."""

    def __init__(self, partitions: int, read_batch: int = 7) -> None:
        self.partitions: dict[int, list[SourceRecord]] = {p: [] for p in range(partitions)}
        self.read_batch = read_batch  # small, so a replay comes in several batches
        self.reads: list[tuple[int, int, int]] = []  # (partition, start, end) per read

    def append(self, partition: int, value: bytes) -> SourceRecord:
        record = SourceRecord(partition, len(self.partitions[partition]), value)
        self.partitions[partition].append(record)
        return record

    def end(self, partition: int) -> int:
        return len(self.partitions[partition])

    def read(self, partition: int, start: int, end: int) -> Iterator[list[SourceRecord]]:
        self.reads.append((partition, start, end))
        wanted = self.partitions[partition][max(start, 0):end]
        for at in range(0, len(wanted), self.read_batch):
            yield wanted[at:at + self.read_batch]

    def batches(self, positions: dict[int, int], per_partition: int) -> Iterator[list[SourceRecord]]:
        """What a consumer positioned at ``positions`` would be handed: up to ``per_partition`` records of
        each partition per batch, until every partition's end."""
        position = dict(positions)
        while any(position[p] < self.end(p) for p in position):
            batch: list[SourceRecord] = []
            for partition in sorted(position):
                taken = self.partitions[partition][position[partition]:position[partition] + per_partition]
                batch += taken
                position[partition] += len(taken)
            yield batch


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
