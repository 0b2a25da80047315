"""Moves chunks from a source (simulator or replay) to the sinks, optionally paced to the wall clock.

Pacing maps event time to wall time: with speed-up ``S`` a reading stamped ``d`` ms after the origin
is sent ``d / S`` ms after the run began; ``rate`` caps readings per second on top. Neither changes
*what* is sent, only *when*, which keeps seeded runs identical whatever the pace.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from forewarn.schemas import GroundTruthEvent
from forewarn.sim.batch import Chunk, ReadingBatch
from forewarn.sim.sinks import ReadingSink, TruthSink

MIN_SLEEP_S = 0.01  # gathers readings that fall due together into one write
MAX_SLEEP_S = 0.25  # stays responsive to Ctrl-C


def is_paced(speedup: float | None, rate: float | None) -> bool:
    return bool(rate and rate > 0) or (speedup is not None and 0 < speedup < math.inf)


class Pacer:
    def __init__(
        self,
        origin_ms: int,
        speedup: float | None = None,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._origin = origin_ms
        self._speedup = speedup if speedup is not None and 0 < speedup < math.inf else None
        self._rate = rate if rate and rate > 0 else None
        self._clock, self._sleep = clock, sleep
        self._wall0: float | None = None
        self._sent = 0

    @property
    def active(self) -> bool:
        return self._speedup is not None or self._rate is not None

    def _elapsed(self) -> float:
        if self._wall0 is None:
            self._wall0 = self._clock()
        return self._clock() - self._wall0

    def wait_for(self, ts_ms: int) -> None:
        """Sleep until event time ``ts_ms`` is due (ground truth is sent when it happens)."""
        if self._speedup is None:
            return
        target = (ts_ms - self._origin) / 1000.0 / self._speedup
        while (wait := target - self._elapsed()) > 0:
            self._sleep(min(wait, MAX_SLEEP_S))

    def slices(self, batch: ReadingBatch) -> Iterator[ReadingBatch]:
        """The batch in pieces, each yielded when its readings fall due."""
        total = len(batch)
        if not self.active or total == 0:
            self._sent += total
            yield batch
            return
        target = np.zeros(total)
        if self._speedup is not None:
            # Jitter may put a reading a few ms before its predecessor; pace on the running maximum.
            target = (np.maximum.accumulate(batch.ts) - self._origin) / 1000.0 / self._speedup
        if self._rate is not None:
            target = np.maximum(target, (self._sent + np.arange(1, total + 1)) / self._rate)
        i = 0
        while i < total:
            now = self._elapsed()
            j = int(np.searchsorted(target, now, side="right"))
            if j > i:
                self._sent += j - i
                yield batch.slice(i, j)
                i = j
            else:
                self._sleep(min(max(target[i] - now, MIN_SLEEP_S), MAX_SLEEP_S))


@dataclass
class RunStats:
    readings: int = 0
    outliers_sent: int = 0
    events: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    machines_seen: set[int] = field(default_factory=set)
    first_ts: int | None = None
    last_ts: int | None = None
    wall_s: float = 0.0
    interrupted: bool = False

    @property
    def throughput(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else 0.0

    def failures_by_mode(self) -> dict[str, int]:
        return {str(mode): n for (kind, mode), n in sorted(self.events.items(), key=str) if kind == "failure"}

    def count_events(self, kind: str) -> int:
        return sum(n for (k, _), n in self.events.items() if k == kind)


Progress = Callable[[int, int | None], None]


def run(
    chunks: Iterable[Chunk],
    readings: ReadingSink,
    truth: TruthSink,
    pacer: Pacer | None = None,
    progress: Progress | None = None,
) -> RunStats:
    """Send every chunk; Ctrl-C stops early but still flushes what was sent (and says so)."""
    stats = RunStats()
    began = time.perf_counter()
    try:
        for chunk in chunks:
            _send_events(chunk.events, truth, pacer, stats)
            batches = pacer.slices(chunk.batch) if pacer else [chunk.batch]
            for piece in batches:
                _send_readings(piece, readings, stats)
                if progress:
                    progress(len(piece), stats.last_ts)
            stats.counts.update(chunk.counts or {})
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        try:
            readings.close()
        finally:
            truth.close()
        stats.wall_s = time.perf_counter() - began
    return stats


def _send_events(
    events: tuple[GroundTruthEvent, ...], truth: TruthSink, pacer: Pacer | None, stats: RunStats
) -> None:
    for event in events:
        if pacer:
            pacer.wait_for(event.ts)
        truth.write_events([event])
        stats.events[(event.kind, event.mode)] += 1


def _send_readings(batch: ReadingBatch, readings: ReadingSink, stats: RunStats) -> None:
    if not len(batch):
        return
    readings.write(batch)
    stats.readings += len(batch)
    stats.outliers_sent += int(batch.outlier.sum())
    stats.machines_seen.update(np.unique(batch.machine).tolist())
    low, high = int(batch.ts.min()), int(batch.ts.max())
    stats.first_ts = low if stats.first_ts is None else min(stats.first_ts, low)
    stats.last_ts = high if stats.last_ts is None else max(stats.last_ts, high)
