"""The features service's core, free of faust and Kafka: readings in, feature blocks and online rows out.

State per machine lives in one :class:`FeatureEngine` per machine type. Exactly-once state across crashes
comes from two facts kept here:

* every partition remembers the offset of the last reading applied (``applied``); a reading at or below
  it is skipped, so replays after a restart never count a reading twice;
* a snapshot of a partition (its machines' engine rows and its applied offset) is taken between batches,
  so it is consistent: restoring it and replaying the source topic after its offset rebuilds exactly the
  state an uninterrupted run would have.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson

from forewarn.assets import AssetConfig
from forewarn.features import FEATURE_SET_VERSION, FeatureEngine
from forewarn.vector_codec import VectorBlock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceRecord:
    partition: int
    offset: int
    value: bytes


@dataclass
class Rejected:
    record: SourceRecord
    reason: str


@dataclass
class BatchOutput:
    blocks: dict[int, list[VectorBlock]] = field(default_factory=dict)  # by source partition
    rejected: list[Rejected] = field(default_factory=list)
    accepted: int = 0
    late: int = 0
    duplicates: int = 0
    skipped_replayed: int = 0


@dataclass
class _Latest:
    machine_type: str
    ts: int
    row: np.ndarray
    site: str | None


class FeatureProcessor:
    def __init__(self, config: AssetConfig, *, emit_interval_ms: int = 0) -> None:
        self.config = config
        self.emit_interval_ms = emit_interval_ms
        self.engines = {
            name: FeatureEngine(machine_type, config.allowed_lateness_ms)
            for name, machine_type in config.machine_types.items()
        }
        self.sensor_index = {
            name: {sensor: i for i, sensor in enumerate(machine_type.sensor_names)}
            for name, machine_type in config.machine_types.items()
        }
        self.applied: dict[int, int] = {}  # partition -> last applied offset
        self.machines_of: dict[int, dict[str, str]] = {}  # partition -> machine id -> type
        self.dirty: dict[int, set[str]] = {}  # partition -> machines changed since the last snapshot
        self.latest: dict[str, _Latest] = {}  # machine -> newest vector not yet in the online store

    # -- processing ------------------------------------------------------------------------------------

    def process(self, records: Iterable[SourceRecord], *, emit: bool = True) -> BatchOutput:
        """Apply a batch in order. ``emit=False`` rebuilds state only (replay after a restore)."""
        out = BatchOutput()
        by_type: dict[str, list[tuple[SourceRecord, dict]]] = {}
        for record in records:
            if record.offset <= self.applied.get(record.partition, -1):
                out.skipped_replayed += 1
                continue
            self.applied[record.partition] = record.offset
            reading, reason = self._decode(record.value)
            if reading is None:
                out.rejected.append(Rejected(record, reason))
                continue
            by_type.setdefault(reading["machine_type"], []).append((record, reading))
        for machine_type, items in by_type.items():
            self._apply_type(machine_type, items, out, emit)
        return out

    def _decode(self, raw: bytes) -> tuple[dict | None, str]:
        try:
            reading = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return None, f"not JSON: {exc}"
        if not isinstance(reading, dict):
            return None, "not a JSON object"
        machine_type = reading.get("machine_type")
        if machine_type not in self.engines:
            return None, f"unknown machine_type {machine_type!r}"
        if not isinstance(reading.get("machine_id"), str) or not reading["machine_id"]:
            return None, "machine_id missing or not a string"
        ts = reading.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool):
            return None, "ts must be epoch milliseconds (integer)"
        values = reading.get("values")
        if not isinstance(values, dict):
            return None, "values must be an object of sensor name to number"
        return reading, ""

    def _apply_type(self, machine_type: str, items: list[tuple[SourceRecord, dict]], out: BatchOutput,
                    emit: bool) -> None:
        engine = self.engines[machine_type]
        index = self.sensor_index[machine_type]
        n = len(items)
        values = np.full((n, len(index)), np.nan)
        ids: list[str] = []
        ts = np.empty(n, dtype=np.int64)
        for row, (record, reading) in enumerate(items):
            machine_id = reading["machine_id"]
            ids.append(machine_id)
            ts[row] = reading["ts"]
            for sensor, value in reading["values"].items():
                column = index.get(sensor)
                if column is not None and isinstance(value, int | float) and math.isfinite(value):
                    values[row, column] = value
            partition_machines = self.machines_of.setdefault(record.partition, {})
            if machine_id not in partition_machines:
                partition_machines[machine_id] = machine_type
            self.dirty.setdefault(record.partition, set()).add(machine_id)
        result = engine.update_batch(ids, ts, values)
        out.late += int(result.late.sum())
        out.duplicates += int(result.duplicate.sum())
        accepted_rows = np.flatnonzero(result.accepted)
        out.accepted += len(accepted_rows)
        if not emit or not len(accepted_rows):
            return
        self._collect(machine_type, engine.feature_names, items, ids, ts, accepted_rows, result.features, out)

    def _collect(self, machine_type: str, names: list[str], items: list[tuple[SourceRecord, dict]], ids: list[str],
                 ts: np.ndarray, accepted_rows: np.ndarray, features: np.ndarray, out: BatchOutput) -> None:
        emitted = self._emitted(names, ts[accepted_rows], features)
        per_partition: dict[int, list[int]] = {}
        for position, row in enumerate(accepted_rows.tolist()):
            machine_id = ids[row]
            reading = items[row][1]
            self.latest[machine_id] = _Latest(machine_type, int(ts[row]), features[position], reading.get("site"))
            if emitted[position]:
                per_partition.setdefault(items[row][0].partition, []).append(position)
        for partition, positions in per_partition.items():
            rows = accepted_rows[positions]
            out.blocks.setdefault(partition, []).append(
                VectorBlock(
                    machine_type=machine_type,
                    feature_set_version=FEATURE_SET_VERSION,
                    names=names,
                    machine_ids=[ids[r] for r in rows.tolist()],
                    ts=ts[rows],
                    matrix=features[positions],
                    sites=[items[r][1].get("site") for r in rows.tolist()],
                    ingested_at=np.array([items[r][1].get("ingested_at") or 0 for r in rows.tolist()],
                                         dtype=np.int64),
                )
            )

    def _emitted(self, names: list[str], ts: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Which vectors to publish. With an emit interval, a machine's vector is published when its
        reading opens a new interval of event time. The previous watermark is ``ts - gap_ms``, a feature
        itself, so the choice depends on state only and a replay publishes exactly what a run without the
        crash would have."""
        if not self.emit_interval_ms:
            return np.ones(len(ts), dtype=bool)
        gap = features[:, names.index("gap_ms")]
        interval = self.emit_interval_ms
        with np.errstate(invalid="ignore"):
            return np.isnan(gap) | ((ts // interval) > ((ts - np.nan_to_num(gap)) // interval))

    def take_latest(self) -> dict[str, list[tuple[str, _Latest]]]:
        """Newest vector per machine since the last call, grouped by machine type (for the online store)."""
        grouped: dict[str, list[tuple[str, _Latest]]] = {}
        for machine_id, latest in self.latest.items():
            grouped.setdefault(latest.machine_type, []).append((machine_id, latest))
        self.latest = {}
        return grouped

    # -- snapshots -------------------------------------------------------------------------------------

    def snapshot(self, partition: int, only_dirty: bool = True) -> tuple[int, dict[str, dict[str, np.ndarray]]]:
        """(applied offset, {machine type: exported engine state}) of one partition's machines."""
        machines = self.machines_of.get(partition, {})
        wanted = self.dirty.get(partition, set()) if only_dirty else set(machines)
        by_type: dict[str, list[str]] = {}
        for machine_id in wanted:
            by_type.setdefault(machines[machine_id], []).append(machine_id)
        states = {t: self.engines[t].export_state(ids) for t, ids in by_type.items()}
        return self.applied.get(partition, -1), states

    def mark_clean(self, partition: int) -> None:
        self.dirty.pop(partition, None)

    def restore(self, partition: int, applied: int, states: dict[str, dict[str, np.ndarray]]) -> None:
        """Load a partition's snapshot; machines of the partition that it lacks start from nothing."""
        self.forget(partition)
        for machine_type, state in states.items():
            if machine_type not in self.engines:
                log.warning("snapshot holds unknown machine type %r; ignored", machine_type)
                continue
            self.engines[machine_type].import_state(state)
            for machine_id in state["machine_ids"].tolist():
                self.machines_of.setdefault(partition, {})[str(machine_id)] = machine_type
        self.applied[partition] = applied

    def forget(self, partition: int) -> None:
        """Drop what we hold for a partition (revoked, or about to be restored)."""
        for machine_id, machine_type in self.machines_of.pop(partition, {}).items():
            self.engines[machine_type].discard([machine_id])
            self.latest.pop(machine_id, None)
        self.applied.pop(partition, None)
        self.dirty.pop(partition, None)
