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
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson

from forewarn.assets import AssetConfig
from forewarn.features import FEATURE_SET_VERSION, FeatureEngine
from forewarn.reading_check import check_reading, not_json
from forewarn.readings_wire import decode_value
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
    reading: object = None  # the offending reading when it came inside an envelope of several


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
            try:
                readings = decode_value(record.value)
            except orjson.JSONDecodeError as exc:
                out.rejected.append(Rejected(record, not_json(exc).message))
                continue
            for reading in readings:
                reason = self._invalid(reading)
                if reason:
                    out.rejected.append(Rejected(record, reason, reading if len(readings) > 1 else None))
                    continue
                by_type.setdefault(reading["machine_type"], []).append((record, reading))
        for machine_type, items in by_type.items():
            self._apply_type(machine_type, items, out, emit)
        return out

    def _invalid(self, reading: object) -> str:
        """Why a decoded reading cannot be used ('' when it can). Ingest validates fully; this guards
        against producers that write to the topic directly. The Spark decode runs the same check."""
        rejection = check_reading(reading, self.engines)
        return "" if rejection is None else rejection.message

    def _apply_type(self, machine_type: str, items: list[tuple[SourceRecord, dict]], out: BatchOutput,
                    emit: bool) -> None:
        engine = self.engines[machine_type]
        sensors = engine.machine_type.sensor_names
        n = len(items)
        readings = [reading for _, reading in items]
        ids = [reading["machine_id"] for reading in readings]
        ts = np.fromiter((reading["ts"] for reading in readings), dtype=np.int64, count=n)
        partitions = np.fromiter((record.partition for record, _ in items), dtype=np.int64, count=n)
        values = self._values(readings, sensors)
        self._track(machine_type, ids, partitions)
        result = engine.update_batch(ids, ts, values)
        out.late += int(result.late.sum())
        out.duplicates += int(result.duplicate.sum())
        accepted_rows = np.flatnonzero(result.accepted)
        out.accepted += len(accepted_rows)
        if not len(accepted_rows):
            return
        self._remember_latest(machine_type, readings, ids, ts, accepted_rows, result.features)
        if not emit:  # a replay still leaves the newest vectors for the online store (see app.restore)
            return
        self._collect(machine_type, engine.feature_names, readings, ids, ts, partitions, accepted_rows,
                      result.features, out)

    @staticmethod
    def _values(readings: list[dict], sensors: tuple[str, ...]) -> np.ndarray:
        """Sensor values in the engine's order. Only JSON numbers count: absent, null, boolean, text or
        non-finite values are NaN (missing), whatever else is in the batch (the Spark path does the same)."""
        rows = [
            [v if type(v) is float or type(v) is int else None
             for v in map(reading["values"].get, sensors)]
            for reading in readings
        ]
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(sensors))
        values[~np.isfinite(values)] = np.nan
        return values

    def _track(self, machine_type: str, ids: list[str], partitions: np.ndarray) -> None:
        """Which machines live in which partition, and which changed since the last snapshot."""
        for partition in np.unique(partitions).tolist():
            members = [ids[i] for i in np.flatnonzero(partitions == partition).tolist()]
            self.machines_of.setdefault(partition, {}).update(dict.fromkeys(members, machine_type))
            self.dirty.setdefault(partition, set()).update(members)

    def _remember_latest(self, machine_type: str, readings: list[dict], ids: list[str], ts: np.ndarray,
                         accepted_rows: np.ndarray, features: np.ndarray) -> None:
        """The newest vector of each machine in this batch (later rows win), for the online store."""
        accepted = accepted_rows.tolist()
        last_position = {ids[row]: position for position, row in enumerate(accepted)}
        for machine_id, position in last_position.items():
            row = accepted[position]
            self.latest[machine_id] = _Latest(machine_type, int(ts[row]), features[position],
                                              readings[row].get("site"))

    def _collect(self, machine_type: str, names: list[str], readings: list[dict], ids: list[str], ts: np.ndarray,
                 partitions: np.ndarray, accepted_rows: np.ndarray, features: np.ndarray, out: BatchOutput) -> None:
        emitted = self._emitted(names, ts[accepted_rows], features)
        accepted_partitions = partitions[accepted_rows]
        for partition in np.unique(accepted_partitions[emitted]).tolist():
            positions = np.flatnonzero((accepted_partitions == partition) & emitted)
            rows = accepted_rows[positions].tolist()
            out.blocks.setdefault(partition, []).append(
                VectorBlock(
                    machine_type=machine_type,
                    feature_set_version=FEATURE_SET_VERSION,
                    names=names,
                    machine_ids=[ids[r] for r in rows],
                    ts=ts[rows],
                    matrix=features[positions],
                    sites=[readings[r].get("site") for r in rows],
                    ingested_at=np.array([readings[r].get("ingested_at") or 0 for r in rows], dtype=np.int64),
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
