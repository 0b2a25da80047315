"""Feature names: deterministic, stable, and the column order of every feature matrix.

Models, the online store and the Spark schema all address features by these names, so the order and
spelling only change together with :data:`FEATURE_SET_VERSION`.
"""

from __future__ import annotations

from forewarn.assets import MachineType

FEATURE_SET_VERSION = "1"
"""Bumped whenever a feature's definition, name or order changes (also invalidates exported state)."""

MACHINE_FEATURES = ("gap_ms", "late_dropped", "duplicates", "readings_since_reset")
"""Per machine: ms since the previous latest reading (negative: this one was late, NaN: first ever);
cumulative readings dropped as too late / as duplicates; accepted readings since start or reset."""

SENSOR_FEATURES = ("last", "baseline")
"""Per sensor: value with the latest event time; mean of the first ``baseline_readings`` after reset."""

WINDOW_STATS = ("mean", "std", "min", "max", "slope", "ewma", "delta_baseline", "missing_ratio")
"""Per sensor and window, in this order (see the package docstring for each definition)."""


def feature_names(machine_type: MachineType) -> list[str]:
    """All feature names of a machine type, in column order.

    ``gap_ms, late_dropped, duplicates, readings_since_reset``, then ``readings__{window}__count`` per
    window, then per sensor ``{sensor}__last, {sensor}__baseline`` followed by
    ``{sensor}__{window}__{stat}`` for every window (time windows first, then count windows ``n{N}``)
    and every stat of :data:`WINDOW_STATS`.
    """
    windows = [w.name for w in machine_type.windows]
    names = [*MACHINE_FEATURES, *(f"readings__{w}__count" for w in windows)]
    for sensor in machine_type.sensor_names:
        names += [f"{sensor}__{stat}" for stat in SENSOR_FEATURES]
        names += [f"{sensor}__{w}__{stat}" for w in windows for stat in WINDOW_STATS]
    if len(set(names)) != len(names):
        raise ValueError("feature names collide; rename the sensor or window that repeats")
    return names
