"""Count windows: the last N accepted readings since reset, in arrival order, from a ring of raw values.

Why recompute from the ring instead of keeping running sums: evicting a value from a running sum or
min/max either cancels numerically or needs a deque per sensor, while the largest count window is small
(tens of readings) and every count window of a type is a prefix of the same newest-first ring, so one
pass serves all of them. Cost per reading is O(largest count window), vectorized across machines.

Sums are taken about the newest value present in the window (a member of it), which bounds cancellation
in the variance by the window length; the trend uses event time in ms relative to the current reading.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from forewarn.features.layout import Layout


def stats(lay: Layout, v: SimpleNamespace, ts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sensor stats ``[m, Wc, S]`` and ``count [m, Wc]`` for the count windows, after reading ``ts``.

    ``v.ring_x [m, Nmax, S]`` and ``v.ring_t`` hold values and timestamps newest first; values are NaN
    beyond the ``v.since`` readings since reset. ``missing_ratio`` compares each sensor's values with
    the readings expected at the nominal interval between the window's earliest and latest event times.
    """
    counts, since = lay.counts, v.since
    # Reading-major copies ([Nmax, m, S]): every op below runs over long contiguous runs, and reducing over
    # the leading axis adds readings one after another, an order that does not depend on batch shapes.
    x = np.ascontiguousarray(v.ring_x.transpose(1, 0, 2))
    nmax, m, s = x.shape
    in_window = np.arange(nmax)[:, None] < since[None, :]
    t = np.where(in_window, v.ring_t[:, :nmax].T - ts[None, :], np.nan)  # ms relative to this reading
    present = ~np.isnan(x)
    shift = np.take_along_axis(x, np.argmax(present, axis=0)[None], axis=0)[0]  # newest value, [m, S]
    terms = np.empty((nmax, 6, m, s))
    n_, xs, xx, tt, t2, tx = (terms[:, i] for i in range(6))
    np.copyto(n_, present)
    np.subtract(x, shift, out=xs)
    xs[~present] = 0.0
    np.multiply(xs, xs, out=xx)
    np.multiply(present, t[:, :, None], out=tt)
    tt[~present] = 0.0  # t is NaN outside the window, where no value is present either
    np.multiply(tt, tt, out=t2)
    np.multiply(tt, xs, out=tx)
    sums = [np.add.reduce(terms[:c], axis=0) for c in counts]  # each [6, m, S]
    n, sx, sxx, st, stt, stx = (np.stack([p[i] for p in sums], axis=1) for i in range(6))  # [m, Wc, S]
    lo = np.stack([np.fmin.reduce(x[:c], axis=0) for c in counts], axis=1)
    hi = np.stack([np.fmax.reduce(x[:c], axis=0) for c in counts], axis=1)
    span = np.stack([np.fmax.reduce(t[:c], axis=0) - np.fmin.reduce(t[:c], axis=0) for c in counts], axis=1)
    count = np.minimum(counts[None, :], since[:, None]).astype(float)
    expected = np.maximum(count, np.floor(span / lay.interval_ms) + 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_shift = sx / n
        return {
            "mean": shift[:, None, :] + mean_shift,
            "mean_rel": (shift - v.origin)[:, None, :] + mean_shift,  # relative to the sensor's origin
            "std": np.sqrt(np.maximum(sxx - sx * sx / n, 0.0) / n),
            "min": lo,
            "max": hi,
            "slope": (stx - st * sx / n) / (stt - st * st / n) * 1000.0,
            "missing_ratio": 1.0 - n / expected[:, :, None],
            "count": count,
        }
