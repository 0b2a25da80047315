"""The feature engine: struct-of-arrays state for many machines of one type, updated in vectorized batches.

Why batches and rounds: per-reading Python loops over sensors x windows x stats are two orders of
magnitude too slow for the streaming service. A batch is split into rounds, round k holding the k-th
reading of each machine in the batch, so each round touches every machine at most once and is computed
with numpy across machines; readings of one machine are still applied in input order. Results depend
only on each machine's own readings and their order, never on how they were batched: sums over small
axes are written out in a fixed order for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from forewarn.assets import MachineType
from forewarn.features import countwin, timewin
from forewarn.features.layout import Layout
from forewarn.features.names import WINDOW_STATS, feature_names

_MAX_EXACT_MS = 2.0**53


@dataclass(frozen=True)
class BatchResult:
    """``features[i]`` belongs to the i-th accepted reading, in input order."""

    features: np.ndarray  # [accepted, len(feature_names)] float64
    accepted: np.ndarray  # [n] bool
    late: np.ndarray  # [n] bool: older than watermark - allowed lateness, or than the last reset
    duplicate: np.ndarray  # [n] bool: same machine and ts as a recent accepted reading


class FeatureEngine:
    """Rolling-window features of every machine of one type (see the package docstring for semantics)."""

    def __init__(self, machine_type: MachineType, allowed_lateness_ms: int = 0, *,
                 initial_capacity: int = 1024) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        self.machine_type = machine_type
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.layout = Layout(machine_type)
        self.feature_names = feature_names(machine_type)
        self._slots: dict[str, int] = {}
        self._ids: list[str | None] = []  # by slot; None marks a free slot
        self._free: list[int] = []
        self._state = np.tile(self.layout.initial_row, (max(1, initial_capacity), 1))
        self._alpha_count = 2.0 / (self.layout.counts.astype(float) + 1.0)

    # -- machines ---------------------------------------------------------------------------------------

    @property
    def machine_ids(self) -> list[str]:
        return [i for i in self._ids if i is not None]

    def __len__(self) -> int:
        return len(self._slots)

    def _slots_for(self, machine_ids: Sequence[str], create: bool = True) -> np.ndarray:
        get = self._slots.get
        slots = [get(i, -1) for i in machine_ids]
        if create and -1 in slots:
            for pos, slot in enumerate(slots):
                if slot == -1:
                    mid = machine_ids[pos]
                    slot = self._slots.get(mid, -1)
                    if slot == -1:
                        slot = self._add(mid)
                    slots[pos] = slot
        return np.asarray(slots, dtype=np.intp)

    def _add(self, machine_id: str) -> int:
        if self._free:
            slot = self._free.pop()
            self._ids[slot] = machine_id
        else:
            slot = len(self._ids)
            if slot == self._state.shape[0]:
                grown = np.tile(self.layout.initial_row, (2 * slot, 1))
                grown[:slot] = self._state
                self._state = grown
            self._ids.append(machine_id)
        self._slots[machine_id] = slot
        return slot

    def discard(self, machine_ids: Sequence[str]) -> None:
        """Forget machines (partition revoked): their slots are reused and they would start from nothing."""
        for machine_id in machine_ids:
            slot = self._slots.pop(machine_id, None)
            if slot is not None:
                self._state[slot] = self.layout.initial_row
                self._ids[slot] = None
                self._free.append(slot)

    def reset(self, machine_ids: Sequence[str]) -> None:
        """Maintenance: restart windows, EWMA, last values and baseline. Unknown machines have no state."""
        slots = self._slots_for([i for i in machine_ids if i in self._slots], create=False)
        if len(slots):
            rows = self._state[slots]
            self.layout.clear(rows, np.ones(len(slots), dtype=bool))
            self._state[slots] = rows

    # -- snapshots --------------------------------------------------------------------------------------

    def export_state(self, machine_ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The state of the given machines (default all) as plain arrays, for crash recovery."""
        ids = self.machine_ids if machine_ids is None else list(machine_ids)
        missing = [i for i in ids if i not in self._slots]
        if missing:
            raise KeyError(f"no state for machines {missing[:5]}")
        slots = np.asarray([self._slots[i] for i in ids], dtype=np.intp)
        return {
            "signature": np.array(self.layout.signature),
            "machine_ids": np.array([str(i) for i in ids]),
            "rows": self._state[slots].copy(),
        }

    def import_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the state of the machines in ``state`` (from :meth:`export_state` of the same type)."""
        signature = str(state["signature"])
        if signature != self.layout.signature:
            raise ValueError(f"state was exported by another layout: {signature!r} != {self.layout.signature!r}")
        ids = [str(i) for i in state["machine_ids"]]
        rows = np.asarray(state["rows"], dtype=float)
        if rows.shape != (len(ids), self.layout.row_len):
            raise ValueError(f"state rows have shape {rows.shape}, expected {(len(ids), self.layout.row_len)}")
        self._state[self._slots_for(ids)] = rows

    # -- updates ----------------------------------------------------------------------------------------

    def update_batch(self, machine_ids: Sequence[str], ts_ms: np.ndarray, values: np.ndarray,
                     reset_before: np.ndarray | None = None) -> BatchResult:
        """Apply readings in order and return the features after each accepted one.

        ``ts_ms [n]`` epoch ms (integers), ``values [n, sensors]`` float in ``machine_type.sensor_names``
        order with NaN for a missing value; ``reset_before [n]`` bool resets a machine just before that
        reading (maintenance), so offline replays reproduce online resets.
        """
        ts = np.asarray(ts_ms)
        n = ts.shape[0]
        x = np.asarray(values, dtype=float)
        if x.shape != (n, len(self.layout.sensors)) or len(machine_ids) != n:
            raise ValueError(
                f"expected {n} machine ids and values of shape {(n, len(self.layout.sensors))}, "
                f"got {len(machine_ids)} ids and {x.shape}"
            )
        ts = ts.astype(float)
        if n and not (np.all(np.abs(ts) < _MAX_EXACT_MS) and np.all(ts == np.floor(ts))):
            raise ValueError("ts_ms must be whole epoch milliseconds")
        if np.isinf(x).any():
            raise ValueError("values must be finite or NaN (missing)")
        resets = np.zeros(n, dtype=bool) if reset_before is None else np.asarray(reset_before, dtype=bool)
        if resets.shape != (n,):
            raise ValueError(f"reset_before must have shape {(n,)}, got {resets.shape}")
        slots = self._slots_for(machine_ids)
        out = np.empty((n, len(self.feature_names)))  # rows of rejected readings are never returned
        status = np.zeros(n, dtype=np.int8)  # 0 accepted, 1 late, 2 duplicate
        for idx in _rounds(slots):
            self._round(idx, slots[idx], ts[idx], x[idx], resets[idx], out, status)
        accepted = status == 0
        return BatchResult(out if accepted.all() else out[accepted], accepted, status == 1, status == 2)

    def _round(self, idx: np.ndarray, slots: np.ndarray, ts: np.ndarray, x: np.ndarray, resets: np.ndarray,
               out: np.ndarray, status: np.ndarray) -> None:
        lay = self.layout
        rows = self._state[slots]
        lay.clear(rows, resets)
        v = lay.views(rows)
        late = (ts < v.max_ts - self.allowed_lateness_ms) | (ts <= v.reset_ts)
        dup = ~late & (v.ring_t == ts[:, None]).any(axis=1)
        v.late += late
        v.dups += dup
        ok = ~(late | dup)
        if not ok.all():
            status[idx[late]] = 1
            status[idx[dup]] = 2
            self._state[slots] = rows
            idx, slots, ts, x, rows = idx[ok], slots[ok], ts[ok], x[ok], rows[ok]
            if not len(idx):
                return
            v = lay.views(rows)
        machine = self._apply(rows, v, ts, x)
        out[idx] = np.concatenate([machine, self._window_features(v, ts)], axis=1)
        self._state[slots] = rows

    def _apply(self, rows: np.ndarray, v: SimpleNamespace, ts: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Fold accepted readings (one per machine) into the state; returns the machine-level features
        that need the state from before the reading."""
        lay = self.layout
        gap = np.where(np.isfinite(v.max_ts), ts - v.max_ts, np.nan)
        since_before = v.since.copy()
        v.max_ts[:] = np.maximum(v.max_ts, ts)
        v.min_ts[:] = np.minimum(v.min_ts, ts)
        v.since += 1.0
        present = ~np.isnan(x)
        v.ring_t[:, 1:] = v.ring_t[:, :-1]
        v.ring_t[:, 0] = ts
        if lay.ring_len:
            v.ring_x[:, 1:] = v.ring_x[:, :-1]
            v.ring_x[:, 0] = x

        v.origin[:] = np.where(present & np.isnan(v.origin), x, v.origin)
        rel = x - v.origin  # NaN where missing
        into_baseline = present & (since_before < lay.baseline_readings)[:, None]
        v.base_s += np.where(into_baseline, rel, 0.0)
        v.base_n += into_baseline

        # Time EWMAs follow event time: only a value newer than the sensor's last one moves them, with
        # weight 1 - exp(-dt / tau), tau = D/2 (the mean age of a uniform window of length D).
        advances = present & (ts[:, None] > v.last_t)
        wt = len(lay.time_windows)
        if wt:
            dt = ts[:, None] - v.last_t  # inf for the first value: weight 1
            alpha = -np.expm1(-(dt[:, None, :] / lay.ewma_tau_ms[None, :, None]))
            e = v.ewma[:, :wt]
            moved = np.where(np.isnan(e), x[:, None, :], e + alpha * (x[:, None, :] - e))
            v.ewma[:, :wt] = np.where(advances[:, None, :], moved, e)
            timewin.update(lay, rows, v, ts, x, rel)
        # Count EWMAs follow arrival order like count windows, weight 2 / (N + 1).
        if len(lay.counts):
            e = v.ewma[:, wt:]
            a = self._alpha_count[None, :, None]
            moved = np.where(np.isnan(e), x[:, None, :], e + a * (x[:, None, :] - e))
            v.ewma[:, wt:] = np.where(present[:, None, :], moved, e)
        v.last_x[:] = np.where(advances, x, v.last_x)
        v.last_t[:] = np.where(advances, ts[:, None], v.last_t)
        return np.stack([gap, v.late, v.dups, v.since], axis=1)

    def _window_features(self, v: SimpleNamespace, ts: np.ndarray) -> np.ndarray:
        """Window counts, then per sensor last, baseline and window stats: the column order of
        :func:`feature_names` after the first four machine features."""
        lay = self.layout
        parts = []
        if len(lay.time_windows):
            parts.append(timewin.stats(lay, v))
        if len(lay.counts):
            parts.append(countwin.stats(lay, v, ts))
        merged = parts[0] if len(parts) == 1 else {
            key: np.concatenate([p[key] for p in parts], axis=1) for key in parts[0]
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            baseline_rel = v.base_s / v.base_n
        baseline = v.origin + baseline_rel
        merged["ewma"] = v.ewma
        merged["delta_baseline"] = merged["mean_rel"] - baseline_rel[:, None, :]
        m, w, s = merged["mean"].shape
        k = len(WINDOW_STATS)
        out = np.empty((m, w + s * (2 + w * k)))
        out[:, :w] = merged["count"]
        per_sensor = out[:, w:].reshape(m, s, 2 + w * k)
        per_sensor[:, :, 0] = v.last_x
        per_sensor[:, :, 1] = baseline
        window_stats = per_sensor[:, :, 2:].reshape(m, s, w, k)
        for i, stat in enumerate(WINDOW_STATS):
            window_stats[:, :, :, i] = merged[stat].transpose(0, 2, 1)
        return out


def _rounds(slots: np.ndarray) -> list[np.ndarray]:
    """Reading indices grouped by occurrence: round k holds the k-th reading of each machine."""
    n = slots.shape[0]
    if n == 0:
        return []
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    if starts.all():
        return [order]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n) - first
    by_round = np.argsort(rank, kind="stable")
    sizes = np.bincount(rank)
    return np.split(by_round, np.cumsum(sizes)[:-1])
