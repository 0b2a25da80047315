"""Readings and ground truth as Parquet datasets partitioned by event date (Hive style, ``date=YYYY-MM-DD``).

Layout under the output folder, readable by Spark and pandas alike::

    readings/date=2026-01-01/part-00000.parquet      machine_id, machine_type, ts, <one column per sensor>
    ground_truth/date=2026-01-01/part-00000.parquet  machine_id, machine_type, ts, kind, mode

``ts`` is epoch milliseconds (int64), as on the wire; a missing sensor value is null. Files are written
in event-time order, one per date, with nothing run-dependent in them, so the same seed gives
byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forewarn.errors import UserError
from forewarn.schemas import GroundTruthEvent
from forewarn.sim.batch import Machines, ReadingBatch

DAY_MS = 86_400_000
READINGS_DIR = "readings"
TRUTH_DIR = "ground_truth"
_WRITE_OPTIONS = {"compression": "zstd", "write_statistics": True}


def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")


def prepare_output(root: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder unless asked, because readers would see both."""
    for name in (READINGS_DIR, TRUTH_DIR):
        target = root / name
        if target.exists() and any(target.iterdir()):
            if not overwrite:
                raise UserError(f"{target} already holds data; choose another folder or pass --overwrite")
            for old in sorted(target.rglob("*.parquet")):
                old.unlink()


class ParquetReadingSink:
    def __init__(self, root: Path, sensors: tuple[str, ...]) -> None:
        self._root = root / READINGS_DIR
        self._sensors = sensors
        self._schema = pa.schema(
            [
                ("machine_id", pa.dictionary(pa.int32(), pa.string())),
                ("machine_type", pa.dictionary(pa.int32(), pa.string())),
                ("ts", pa.int64()),
                *[(name, pa.float64()) for name in sensors],
            ]
        )
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._lookup: tuple[Machines, pa.Array, pa.Array, np.ndarray] | None = None
        self.files: list[Path] = []

    def _writer(self, day: int) -> pq.ParquetWriter:
        if day not in self._writers:
            folder = self._root / f"date={_date(day)}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{len(list(folder.glob('part-*.parquet'))):05d}.parquet"
            self._writers[day] = pq.ParquetWriter(path, self._schema, **_WRITE_OPTIONS)
            self.files.append(path)
        return self._writers[day]

    def write(self, batch: ReadingBatch) -> None:
        if not len(batch):
            return
        days = batch.ts // DAY_MS
        # Blocks are in event-time order; jitter may interleave two days by a few ms at midnight.
        for day in np.unique(days).tolist():
            rows = np.flatnonzero(days == day)
            self._writer(day).write_table(self._table(batch, rows))
        # Dates only move forward: close files of days that are over so memory stays flat.
        latest = int(days.max())
        for old in [d for d in self._writers if d < latest - 1]:
            self._writers.pop(old).close()

    def _table(self, batch: ReadingBatch, rows: np.ndarray) -> pa.Table:
        machines = batch.machine[rows].astype(np.int32)
        if self._lookup is None or self._lookup[0] is not batch.machines:
            names = sorted(set(batch.machines.types))
            codes = np.array([names.index(t) for t in batch.machines.types], dtype=np.int32)
            self._lookup = (batch.machines, pa.array(batch.machines.ids), pa.array(names), codes)
        _, id_names, type_names, type_codes = self._lookup
        ids = pa.DictionaryArray.from_arrays(pa.array(machines), id_names)
        types = pa.DictionaryArray.from_arrays(pa.array(type_codes[machines]), type_names)
        columns = [ids, types, pa.array(batch.ts[rows])]
        values = batch.values[rows]
        by_name = {name: i for i, name in enumerate(batch.sensors)}
        for name in self._sensors:
            column = values[:, by_name[name]]
            columns.append(pa.array(column, mask=np.isnan(column)))
        return pa.Table.from_arrays(columns, schema=self._schema)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class ParquetTruthSink:
    """Ground truth is small: kept in memory and written once, per date, at close."""

    def __init__(self, root: Path) -> None:
        self._root = root / TRUTH_DIR
        self._events: list[GroundTruthEvent] = []

    def write_events(self, events: Sequence[GroundTruthEvent]) -> None:
        self._events.extend(events)

    def close(self) -> None:
        if not self._events:
            return
        events = sorted(self._events, key=lambda e: (e.ts, e.machine_id, e.kind))
        self._events = []
        table = pa.table(
            {
                "machine_id": pa.array([e.machine_id for e in events], pa.string()),
                "machine_type": pa.array([e.machine_type for e in events], pa.string()),
                "ts": pa.array([e.ts for e in events], pa.int64()),
                "kind": pa.array([e.kind for e in events], pa.string()),
                "mode": pa.array([e.mode for e in events], pa.string()),
            }
        )
        days = np.array([e.ts // DAY_MS for e in events])
        for day in np.unique(days).tolist():
            folder = self._root / f"date={_date(day)}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = np.flatnonzero(days == day)
            pq.write_table(table.take(rows), folder / "part-00000.parquet", **_WRITE_OPTIONS)
