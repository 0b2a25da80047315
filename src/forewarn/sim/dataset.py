"""A recorded dataset ready to replay: readings as arrays, ground truth, and how event time is made.

Benchmark datasets count time in cycles or rows, not instants; such a dataset keeps a step index per
reading and becomes a timeline only when the replay chooses a start (``start + step * interval``).
Datasets with real timestamps keep them (shifted when a start is given).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from forewarn.schemas import GroundTruthEvent
from forewarn.sim.batch import Chunk, Machines, ReadingBatch, empty_batch

BLOCK_READINGS = 65_536


@dataclass(frozen=True)
class TruthAt:
    """A ground-truth event tied to a reading's position, so it moves with the timeline."""

    machine: int
    time: int  # a step index (synthetic time) or epoch ms, like the readings
    kind: str
    mode: str | None = None


@dataclass(frozen=True)
class Dataset:
    description: str
    machines: Machines
    sensors: tuple[str, ...]
    machine: np.ndarray  # (R,) index into machines
    time: np.ndarray  # (R,) int64: step index when synthetic_time, else epoch ms
    values: np.ndarray  # (R, S) float64, NaN = no value
    synthetic_time: bool
    step_ms: int = 0
    truth: tuple[TruthAt, ...] = ()
    notes: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @property
    def span_ms(self) -> int:
        """Event time covered; for step-indexed data, from the origin (step 0) to the last step."""
        if not len(self):
            return 0
        if self.synthetic_time:
            return int(self.time.max()) * self.step_ms
        return int(self.time.max() - self.time.min())

    def timestamps(self, start_ms: int | None, times: np.ndarray) -> np.ndarray:
        if self.synthetic_time:
            return (start_ms or 0) + times.astype(np.int64) * self.step_ms
        if start_ms is None or not len(self):
            return times.astype(np.int64)
        return times.astype(np.int64) + (start_ms - int(self.time.min()))

    def chunks(self, start_ms: int | None) -> Iterator[Chunk]:
        """Readings in event-time order (ties by machine); each event rides with the first block that
        starts after it, so a failure at an engine's last cycle follows that last reading."""
        ts = self.timestamps(start_ms, self.time)
        order = np.lexsort((self.machine, ts))
        truth = sorted(
            (
                GroundTruthEvent(
                    machine_id=self.machines.ids[e.machine],
                    machine_type=self.machines.types[e.machine],
                    ts=int(self.timestamps(start_ms, np.array([e.time]))[0]),
                    kind=e.kind,
                    mode=e.mode,
                )
                for e in self.truth
            ),
            key=lambda e: (e.ts, e.machine_id, e.kind),
        )
        pending = 0
        for begin in range(0, len(order), BLOCK_READINGS):
            rows = order[begin : begin + BLOCK_READINGS]
            first = int(ts[rows[0]])
            due = pending
            while due < len(truth) and truth[due].ts < first:
                due += 1
            batch = ReadingBatch(
                self.machines,
                self.sensors,
                self.machine[rows],
                ts[rows],
                self.values[rows],
                np.zeros(rows.size, dtype=bool),
            )
            yield Chunk(batch, tuple(truth[pending:due]))
            pending = due
        if pending < len(truth):
            yield Chunk(empty_batch(self.machines, self.sensors), tuple(truth[pending:]))
