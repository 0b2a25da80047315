"""Event-time windows as rings of BUCKETS sub-buckets, each holding Welford moments per sensor.

A window of duration D has buckets of width ``w = ceil(D / BUCKETS)`` ms aligned to the epoch: a reading
at ``ts`` belongs to bucket ``k = floor(ts / w)``, kept in slot ``k mod BUCKETS``. With ``K`` the bucket
of the machine's watermark (latest accepted event time), the window covers the readings accepted since
the last reset whose bucket is in ``K-BUCKETS+1 .. K``: from ``(K-BUCKETS+1)*w`` to the watermark, i.e.
between ``D-w`` and ``D`` of event time (45-60 s for a 1 min window). Buckets that fall out are emptied
as soon as the watermark moves, so every non-empty slot is live and merging needs no masks.

Why Welford per bucket (count, means, centred moments) rather than plain sums: sums of squares cancel
catastrophically for values like 1e9 + noise; centred moments do not, and buckets merge exactly with
Chan's parallel formula. Event time enters as ms after the bucket start, exact integers, so the trend
is computed without the 1e12-sized epoch ever being squared.

Arrays are ``tb [m, F, B, Wt, S]`` (fields of :data:`TB_FIELDS`), ``tb_id``/``tb_cnt [m, B, Wt]``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from forewarn.features.layout import BUCKETS, TB_FILL, Layout


def _sum_buckets(a: np.ndarray) -> np.ndarray:
    """Sum over the bucket axis 1 in a fixed order: np.sum's association depends on the memory layout,
    which would make results depend on how readings were batched."""
    total = a[:, 0]
    for b in range(1, a.shape[1]):
        total = total + a[:, b]
    return total


def update(lay: Layout, rows: np.ndarray, v: SimpleNamespace, ts: np.ndarray, x: np.ndarray,
           rel: np.ndarray) -> None:
    """Add one reading per machine (``ts [m]``, ``x [m, S]`` with NaN for missing, ``rel = x - origin``)
    to every time window of the gathered ``rows`` in place, after the watermark ``v.max_ts`` moved. A late
    reading whose bucket already fell out of a window is left out of that window."""
    tb, tb_id, tb_cnt, bucket_ms = v.tb, v.tb_id, v.tb_cnt, lay.bucket_ms
    m, f, _, wt, s = tb.shape
    K = np.floor_divide(v.max_ts[:, None], bucket_ms)  # [m, Wt]
    stale = np.isfinite(tb_id) & (tb_id <= (K - BUCKETS)[:, None, :])
    if stale.any():
        at = np.nonzero(stale)
        tb[at[0], :, at[1], at[2]] = TB_FILL[:, None]
        tb_id[stale] = -np.inf
        tb_cnt[stale] = 0.0
    k = np.floor_divide(ts[:, None], bucket_ms)
    live = k > K - BUCKETS
    # A live bucket's slot holds that bucket or is empty: older buckets were emptied above.
    slot = np.remainder(k, BUCKETS).astype(np.intp)  # [m, Wt]
    machine = np.arange(m)[:, None]
    window = np.arange(wt)[None, :]
    tb_id[machine, slot, window] = np.where(live, k, tb_id[machine, slot, window])
    tb_cnt[machine, slot, window] += live

    # One flat gather/scatter of the live slot of every field and window: far cheaper than numpy's
    # multi-array indexing over five axes.
    start = np.arange(m) * rows.shape[1] + lay.blocks["tb"].offset
    idx = (start[:, None, None, None] + lay.tb_field_sensor_offsets[None]
           + (slot * (wt * s))[:, None, :, None])  # [m, F, Wt, S]
    assert rows.flags.c_contiguous, "gathered rows must be C-contiguous for the flat view to write through"
    flat = rows.reshape(-1)
    cur = np.take(flat, idx)
    n, tmean, xmean, m2t, m2x, ctx, lo, hi = (cur[:, i] for i in range(f))
    t = (ts[:, None] - k * bucket_ms)[:, :, None]  # ms after the bucket start, exact
    xb = rel[:, None, :]  # means and moments about the sensor's origin; min and max in raw values
    new = np.empty_like(cur)
    n1 = np.add(n, 1.0, out=new[:, 0])
    dt = t - tmean
    dx = xb - xmean
    tmean1 = np.add(tmean, dt / n1, out=new[:, 1])
    xmean1 = np.add(xmean, dx / n1, out=new[:, 2])
    dx1 = xb - xmean1
    np.add(m2t, dt * (t - tmean1), out=new[:, 3])
    np.add(m2x, dx * dx1, out=new[:, 4])
    np.add(ctx, dt * dx1, out=new[:, 5])
    np.fmin(lo, x[:, None, :], out=new[:, 6])
    np.fmax(hi, x[:, None, :], out=new[:, 7])
    skip = ~(live[:, :, None] & ~np.isnan(x)[:, None, :])  # [m, Wt, S]
    if skip.any():
        np.copyto(new, cur, where=skip[:, None])
    flat[idx] = new

def stats(lay: Layout, v: SimpleNamespace) -> dict[str, np.ndarray]:
    """Merge the buckets of every time window: per-sensor stats ``[m, Wt, S]`` and ``count [m, Wt]``.

    Means are kept relative to the sensor's origin (``mean_rel``), so 1e9-sized levels do not swamp
    the differences; ``mean`` adds the origin back. ``missing_ratio`` compares each sensor's
    values with the readings expected at the nominal interval over the covered span (window start or
    first reading since reset, whichever is later, to the watermark).
    """
    tb, tb_id, tb_cnt, bucket_ms = v.tb, v.tb_id, v.tb_cnt, lay.bucket_ms
    max_ts, min_ts = v.max_ts, v.min_ts
    K = np.floor_divide(max_ts[:, None], bucket_ms)  # [m, Wt]
    n, tmean_b, xmean_b = tb[:, 0], tb[:, 1], tb[:, 2]  # [m, B, Wt, S]
    count = _sum_buckets(tb_cnt)
    total = _sum_buckets(n)
    # Bucket mean times relative to the start of bucket K: exact integer offsets plus in-bucket means.
    offset = (tb_id - K[:, None, :]) * bucket_ms
    offset[~np.isfinite(offset)] = 0.0
    tmb = tmean_b + offset[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rel = _sum_buckets(n * xmean_b) / total
        tmean = _sum_buckets(n * tmb) / total
        dx = xmean_b - mean_rel[:, None]
        dt = tmb - tmean[:, None]
        ndt = n * dt
        m2t = _sum_buckets(tb[:, 3] + ndt * dt)
        m2x = _sum_buckets(tb[:, 4] + n * dx * dx)
        ctx = _sum_buckets(tb[:, 5] + ndt * dx)
        empty = total == 0
        lo, hi = tb[:, 6, 0], tb[:, 7, 0]
        for b in range(1, BUCKETS):
            lo = np.minimum(lo, tb[:, 6, b])
            hi = np.maximum(hi, tb[:, 7, b])
        lo[empty] = np.nan
        hi[empty] = np.nan
        start = np.maximum((K - (BUCKETS - 1)) * bucket_ms, min_ts[:, None])
        expected = np.maximum(count, np.floor((max_ts[:, None] - start) / lay.interval_ms) + 1.0)
        return {
            "mean": v.origin[:, None, :] + mean_rel,
            "mean_rel": mean_rel,
            "std": np.sqrt(m2x / total),
            "min": lo,
            "max": hi,
            "slope": ctx / m2t * 1000.0,
            "missing_ratio": 1.0 - total / expected[:, :, None],
            "count": count,
        }
