"""Causal rolling statistics over the readings of each machine, vectorized with cumulative sums.

Every value at row ``i`` uses only rows ``<= i`` of the same machine (windows are truncated at the
machine's first reading, like a stream that has just started), so a run cut at any cycle gets the same
features as the full run at that cycle: that is what lets cross-validation score truncated runs, and what
keeps these batch features interchangeable with the streaming ones in :mod:`forewarn.features`.

Rows must be sorted by machine, then time.
"""

from __future__ import annotations

import numpy as np


def group_starts(groups: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's group (groups contiguous)."""
    groups = np.asarray(groups)
    n = len(groups)
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        is_start[1:] = groups[1:] != groups[:-1]
    starts = np.flatnonzero(is_start)
    return np.repeat(starts, np.diff(np.append(starts, n)))


def position_in_group(groups: np.ndarray) -> np.ndarray:
    """0-based position of each row inside its group."""
    return np.arange(len(groups)) - group_starts(groups)


def _window_sum(cumsum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return cumsum[hi] - cumsum[lo]


def _cumsum0(values: np.ndarray) -> np.ndarray:
    out = np.zeros((values.shape[0] + 1, *values.shape[1:]), dtype=float)
    np.cumsum(values, axis=0, out=out[1:])
    return out


def rolling_stats(values: np.ndarray, groups: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling mean, standard deviation and least-squares slope (per row) over the last ``window`` rows.

    ``values`` is (n_rows, n_columns); the slope is in units per row (per cycle for C-MAPSS). With a
    single reading in the window the std and slope are 0.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    idx = np.arange(n)
    starts = group_starts(groups)
    lo = np.maximum(idx - window + 1, starts)
    # Shift each machine by its first reading: the statistics do not change, but the sums of squares stay
    # small, which keeps the differences of cumulative sums accurate.
    origin = values[starts]
    values = values - origin
    hi = idx + 1
    count = (hi - lo).astype(float)[:, None]
    # Time is measured from the window's own start: the slope does not depend on the origin and small
    # numbers keep the cumulative sums exact enough.
    t = (idx - starts).astype(float)[:, None]
    s_x = _window_sum(_cumsum0(values), lo, hi)
    s_xx = _window_sum(_cumsum0(values * values), lo, hi)
    s_t = _window_sum(_cumsum0(t), lo, hi)
    s_tt = _window_sum(_cumsum0(t * t), lo, hi)
    s_tx = _window_sum(_cumsum0(t * values), lo, hi)
    mean = s_x / count
    var = np.where(count > 1, np.maximum(s_xx / count - mean * mean, 0.0), 0.0)
    mean = mean + origin
    denom = count * s_tt - s_t * s_t
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(denom > 0, (count * s_tx - s_t * s_x) / np.where(denom > 0, denom, 1.0), 0.0)
    return mean, np.sqrt(var), slope


def ewma(values: np.ndarray, groups: np.ndarray, span: float) -> np.ndarray:
    """Recursive exponentially weighted mean, restarted at each machine's first reading.

    ``e_0 = x_0``, ``e_t = a x_t + (1 - a) e_{t-1}`` with ``a = 2 / (span + 1)``: the form a stream
    processor keeps in one number per sensor.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    alpha = 2.0 / (span + 1.0)
    starts = group_starts(groups)
    out = np.empty_like(values)
    # A loop over rows is O(n) and still fast for tens of thousands of rows, vectorized across columns.
    out[0] = values[0]
    for i in range(1, len(values)):
        if starts[i] == i:
            out[i] = values[i]
        else:
            out[i] = alpha * values[i] + (1.0 - alpha) * out[i - 1]
    return out


def baseline_mean(values: np.ndarray, groups: np.ndarray, n_first: int) -> np.ndarray:
    """Mean of each machine's first ``n_first`` readings, as known at each row (causal).

    Before ``n_first`` readings exist it is the mean of those seen so far; afterwards it stays frozen,
    giving each machine its own healthy reference.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    starts = group_starts(groups)
    pos = np.arange(len(values)) - starts
    hi = starts + np.minimum(pos, n_first - 1) + 1
    csum = _cumsum0(values)
    return (csum[hi] - csum[starts]) / (hi - starts).astype(float)[:, None]
