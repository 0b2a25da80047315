"""A columnar block of readings: what simulators and replays produce and what every sink consumes.

Readings stay in numpy arrays from generation to the sink so that writing Parquet never builds a Python
object per reading; only the Kafka and HTTP sinks, whose wire format is one JSON document per reading,
pay for per-reading objects (see :func:`iter_json`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from forewarn.schemas import GroundTruthEvent


@dataclass(frozen=True)
class Machines:
    """The machines a source knows, in a fixed order; batches refer to them by position."""

    ids: tuple[str, ...]
    types: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ReadingBatch:
    """Readings in event-time order: row ``i`` is machine ``machine[i]`` at ``ts[i]``.

    ``values`` has one column per name in ``sensors`` (the union over machine types); NaN means the
    machine did not report that sensor (a dropout, or a sensor its type lacks), and the JSON form omits
    it. ``outlier`` marks deliberate out-of-range values, which ingest is expected to dead-letter.
    """

    machines: Machines
    sensors: tuple[str, ...]
    machine: np.ndarray  # int, shape (R,)
    ts: np.ndarray  # int64 epoch ms, shape (R,)
    values: np.ndarray  # float64, shape (R, len(sensors))
    outlier: np.ndarray  # bool, shape (R,)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int) -> ReadingBatch:
        return ReadingBatch(
            self.machines,
            self.sensors,
            self.machine[start:stop],
            self.ts[start:stop],
            self.values[start:stop],
            self.outlier[start:stop],
        )

    def records(self) -> Iterator[dict[str, object]]:
        """One dict per reading, shaped like :class:`forewarn.schemas.Reading` (NaN sensors left out)."""
        ids, types, names = self.machines.ids, self.machines.types, self.sensors
        for m, ts, row in zip(self.machine.tolist(), self.ts.tolist(), self.values.tolist(), strict=True):
            yield {
                "machine_id": ids[m],
                "machine_type": types[m],
                "ts": ts,
                "values": {n: v for n, v in zip(names, row, strict=True) if v == v},
            }


def iter_json(batch: ReadingBatch) -> Iterator[tuple[str, bytes]]:
    """(machine_id, JSON bytes) per reading: the Kafka key and value."""
    for record in batch.records():
        yield record["machine_id"], orjson.dumps(record)  # type: ignore[misc]


def empty_batch(machines: Machines, sensors: tuple[str, ...]) -> ReadingBatch:
    return ReadingBatch(
        machines,
        sensors,
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.zeros((0, len(sensors))),
        np.zeros(0, dtype=bool),
    )


@dataclass(frozen=True)
class Chunk:
    """A stretch of event time from a source: its readings, the ground truth that happened in it, and
    counts of the imperfections the source injected (for the summary)."""

    batch: ReadingBatch
    events: tuple[GroundTruthEvent, ...] = ()
    counts: dict[str, int] | None = None
