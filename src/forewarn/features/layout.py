"""Per-machine state: one float64 row per machine, carved into named blocks.

Why one float64 row: a round of updates gathers the rows of the machines it touches with one fancy-index
copy and writes them back with one more; export and import are one matrix; and the memory bound is the
row length times 8 bytes, with nothing hiding in Python objects. Timestamps (epoch ms), bucket numbers
and counters are stored as float64, which is exact for integers below 2**53.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from forewarn.assets import MachineType
from forewarn.features.names import FEATURE_SET_VERSION

BUCKETS = 4
"""Sub-buckets per time window. Fixed (not a knob) so that online and offline cannot disagree."""

DEDUP_DEPTH = 20
"""Timestamps of the last accepted readings kept for duplicate detection (at least the largest count
window): at the plant's 1 Hz and 20 s allowed lateness this covers the whole lateness horizon. 20, not
more, keeps a plant machine's state at 5,000 bytes (50 MB per 10,000 machines)."""

TB_FIELDS = ("n", "tmean", "xmean", "m2t", "m2x", "ctx", "min", "max")
"""Per time bucket and sensor: Welford count, mean event time (ms after the bucket start), mean value
(relative to the sensor's origin), centred second moments of time and value, centred co-moment,
minimum, maximum."""
TB_FILL = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, np.inf, -np.inf])


@dataclass(frozen=True)
class Block:
    name: str
    offset: int
    shape: tuple[int, ...]
    fill: float | np.ndarray
    cleared_by_reset: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class Layout:
    """Where each piece of a machine's state lives in its row, and what a fresh or reset row holds."""

    def __init__(self, machine_type: MachineType) -> None:
        self.sensors = machine_type.sensor_names
        self.windows = machine_type.windows
        self.time_windows = tuple(w for w in self.windows if w.is_time)
        self.count_windows = tuple(w for w in self.windows if not w.is_time)
        self.interval_ms = float(machine_type.sampling_interval_ms)
        self.baseline_readings = machine_type.baseline_readings
        # Bucket width rounds up so that BUCKETS buckets always span at least the window's duration.
        durations = [w.duration_ms or 0 for w in self.time_windows]
        self.bucket_ms = np.array([-(-d // BUCKETS) for d in durations], dtype=np.float64)
        self.ewma_tau_ms = np.array(durations, dtype=np.float64) / 2.0
        self.counts = np.array([w.count or 0 for w in self.count_windows], dtype=np.intp)
        self.ring_len = int(self.counts.max()) if len(self.counts) else 0
        self.ts_ring_len = max(DEDUP_DEPTH, self.ring_len)
        s, wt, w = len(self.sensors), len(self.time_windows), len(self.windows)
        # Field-major, so that one field of all buckets is one contiguous run per machine.
        tb_fill = np.broadcast_to(TB_FILL[:, None, None, None], (len(TB_FIELDS), BUCKETS, wt, s))
        specs: list[tuple[str, tuple[int, ...], float | np.ndarray, bool]] = [
            ("tb", (len(TB_FIELDS), BUCKETS, wt, s), tb_fill, True),
            ("tb_id", (BUCKETS, wt), -np.inf, True),  # bucket floor(ts / bucket_ms) in a slot, -inf: empty
            ("tb_cnt", (BUCKETS, wt), 0.0, True),  # readings in the bucket, with or without values
            ("ring_x", (self.ring_len, s), np.nan, True),  # values of the last readings, newest first
            ("ring_t", (self.ts_ring_len,), -np.inf, False),  # their timestamps, also for duplicates
            ("ewma", (w, s), np.nan, True),
            ("last_x", (s,), np.nan, True),
            ("last_t", (s,), -np.inf, True),
            # First value since reset: origin of the baseline sum and of time-window means, so that
            # values like 1e9 + noise keep their small digits (x - origin is exact near the origin).
            ("origin", (s,), np.nan, True),
            ("base_s", (s,), 0.0, True),
            ("base_n", (s,), 0.0, True),
            ("max_ts", (), -np.inf, False),  # the machine's watermark: latest accepted event time
            ("min_ts", (), np.inf, True),  # earliest accepted event time since reset
            ("reset_ts", (), -np.inf, False),  # watermark at the last reset: older readings are late
            ("since", (), 0.0, True),  # accepted readings since start or reset
            ("late", (), 0.0, False),
            ("dups", (), 0.0, False),
        ]
        self.blocks: dict[str, Block] = {}
        offset = 0
        for name, shape, fill, cleared in specs:
            block = Block(name, offset, shape, fill, cleared)
            self.blocks[name] = block
            offset += block.size
        self.row_len = offset
        # Offset of (field, window, sensor) inside the tb block, for slot 0: see timewin.update.
        f, b = len(TB_FIELDS), BUCKETS
        self.tb_field_sensor_offsets = (
            np.arange(f)[:, None, None] * (b * wt * s) + np.arange(wt)[None, :, None] * s + np.arange(s)
        )
        self.initial_row = np.empty(self.row_len)
        self.reset_columns = np.zeros(self.row_len, dtype=bool)
        for block in self.blocks.values():
            span = slice(block.offset, block.offset + block.size)
            self.initial_row[span] = np.broadcast_to(block.fill, block.shape).ravel()
            self.reset_columns[span] = block.cleared_by_reset
        self.signature = "|".join(
            [
                f"v{FEATURE_SET_VERSION}",
                f"buckets={BUCKETS}",
                f"dedup={self.ts_ring_len}",
                "sensors=" + ",".join(self.sensors),
                "windows=" + ",".join(w.name for w in self.windows),
                f"row={self.row_len}",
            ]
        )

    def views(self, rows: np.ndarray) -> SimpleNamespace:
        """Named views into gathered rows ``[m, row_len]``: writing a view writes the rows."""
        m = rows.shape[0]
        out = {}
        for block in self.blocks.values():
            if block.shape == ():
                out[block.name] = rows[:, block.offset]
            else:
                out[block.name] = rows[:, block.offset : block.offset + block.size].reshape(m, *block.shape)
        return SimpleNamespace(**out)

    def clear(self, rows: np.ndarray, which: np.ndarray) -> None:
        """Reset (maintenance) the rows where ``which``: windows, EWMA, last values and baseline restart;
        the watermark, duplicate ring and counters stay, and readings older than the watermark become late."""
        if not which.any():
            return
        idx = np.flatnonzero(which)
        cols = self.reset_columns
        sub = rows[idx]
        sub[:, cols] = self.initial_row[cols]
        rows[idx] = sub
        max_ts = self.blocks["max_ts"].offset
        rows[idx, self.blocks["reset_ts"].offset] = rows[idx, max_ts]


def state_bytes(machine_type: MachineType) -> int:
    """Bytes of numeric state per machine, independent of how many readings it has sent.

    ``8 * (8*Wt*B*S + 2*Wt*B + Nmax*S + max(DEDUP_DEPTH, Nmax) + W*S + 5*S + 6)`` with S sensors, Wt time windows,
    W windows in all, B=4 buckets and Nmax the largest count window: 5000 bytes for the plant's pump.
    The engine's id-to-slot dict adds Python's per-key overhead (~100 bytes plus the id string), and
    its arrays grow by doubling, so allocated memory is up to twice this per machine.
    """
    return Layout(machine_type).row_len * 8
