"""Rolling-window feature math: one definition, used online (streaming service) and offline (Spark, training).

Pure: no I/O. Online and offline both call :meth:`FeatureEngine.update_batch`, and a machine's features
depend only on its own readings and their order, so the same readings in the same order give
bit-identical features however they are batched.

Acceptance, per machine (watermark = latest accepted event time):
  * late: ``ts < watermark - allowed_lateness_ms``, or not after the watermark at the last reset —
    dropped and counted in ``late_dropped``;
  * duplicate: ``ts`` equal to one of the last ``max(20, largest count window)`` accepted timestamps —
    dropped and counted in ``duplicates``;
  * otherwise accepted, out of order or not. Gaps are reported, not filled: ``gap_ms`` (ts minus the
    previous watermark; negative for an out-of-order reading) and each window's ``missing_ratio``.

Windows (per machine and sensor; a sensor's NaN means missing, and stats use the values present):
  * time window of duration D: B=4 epoch-aligned buckets of ``w = ceil(D/4)`` ms; with K the bucket of
    the watermark it covers the readings accepted since the last reset whose ``floor(ts/w)`` lies in
    ``K-3 .. K`` — event times from ``(K-3)*w`` to the watermark, between ``D-w`` and ``D`` long.
    Memory stays constant at any reading rate; a late reading joins its bucket if that is still live.
  * count window ``n{N}``: the last N readings accepted since the last reset, in arrival order.

Stats per window: ``mean``; ``std`` (population, ddof=0); ``min``; ``max``; ``slope`` (least-squares
trend of value against event time, per second, also for count windows: NaN below two values);
``ewma`` (time windows: event-time EWMA with weight ``1-exp(-dt/(D/2))``, only values newer than the
sensor's last one move it; count windows: weight ``2/(N+1)`` per value in arrival order);
``delta_baseline`` (mean minus baseline); ``missing_ratio`` (1 - values present / readings expected at
the nominal sampling interval over the covered span, at least the readings seen). Per sensor also
``last`` (value with the latest event time) and ``baseline`` (mean of the values in the first
``baseline_readings`` readings since start or reset; provisional until that many arrived). Per window
``readings__{window}__count``. Empty window: NaN.

A reset (maintenance) restarts windows, EWMAs, last values and baseline; counters and the watermark stay.

Memory: :func:`state_bytes` per machine, constant in the number of readings — 5000 bytes for the plant
pump (5 sensors; 1m, 10m, 1h, n10). Cost per reading O(B + largest count window), vectorized across the
machines of a batch; a batch holding one machine only runs reading by reading (~4k readings/s), so give
:func:`compute_frame` many machines at once. Numerics: per-bucket Welford moments merged with Chan's
formula, means kept relative to each sensor's first value since reset, count windows summed about a
value of the window, event time as exact ms offsets: no catastrophic cancellation at 1e9 + noise.
"""

from forewarn.features.engine import BatchResult, FeatureEngine
from forewarn.features.frame import ACCEPTED_COLUMN, compute_frame
from forewarn.features.layout import BUCKETS, DEDUP_DEPTH, state_bytes
from forewarn.features.names import FEATURE_SET_VERSION, WINDOW_STATS, feature_names
from forewarn.features.snapshot import state_from_bytes, state_to_bytes

__all__ = [
    "ACCEPTED_COLUMN",
    "BUCKETS",
    "DEDUP_DEPTH",
    "FEATURE_SET_VERSION",
    "WINDOW_STATS",
    "BatchResult",
    "FeatureEngine",
    "compute_frame",
    "feature_names",
    "state_bytes",
    "state_from_bytes",
    "state_to_bytes",
]
