"""Cleaning for the training set, as extra columns: the feature module's inputs are never touched.

The online service computes features from the raw values it receives, so the offline features must come
from the same raw values (``value__*``); cleaning only adds columns that models, EDA and normalization
may use:

* ``clean__{sensor}``: the raw value, null when outside the asset config's valid range, then a missing
  value imputed with the sensor's last value (event-time order) if that is at most the short gap old;
* ``out_of_range`` / ``imputed`` / ``unfilled``: per row, how many values were nulled, imputed, or are
  still missing after imputation;
* ``long_gap``: the machine's previous reading (event time) is more than the short gap before this one.
* ``condition``: for machine types with ``condition_keys``, their cleaned values rounded, as text
  (``setting1=42.0|setting2=0.8``); null when one is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forewarn.assets import MachineType
from forewarn.etl.decode import value_column

CLEAN_PREFIX = "clean__"
CLEAN_FLAGS = ("out_of_range", "imputed", "unfilled", "long_gap")


def clean_column(sensor: str) -> str:
    return f"{CLEAN_PREFIX}{sensor}"


def clean(frame: pd.DataFrame, machine_type: MachineType, short_gap_ms: int, condition_decimals: int = 1
          ) -> pd.DataFrame:
    """Cleaning columns for ``frame`` (``machine_id``, ``ts``, ``value__*``; rows of one machine type),
    aligned to its index. Ties in event time keep the frame's order (arrival); an absent value column
    counts as all missing."""
    order = frame.sort_values(["machine_id", "ts"], kind="stable")
    machines = order["machine_id"]
    ts = order["ts"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(index=order.index)
    out_of_range = np.zeros(len(order), dtype=np.int32)
    imputed = np.zeros(len(order), dtype=np.int32)
    unfilled = np.zeros(len(order), dtype=np.int32)
    ts_series = pd.Series(ts, index=order.index, dtype="float64")
    for sensor, spec in machine_type.sensors.items():
        name = value_column(sensor)
        raw = order[name].astype("float64") if name in order else pd.Series(np.nan, index=order.index)
        bad = raw.notna() & ((raw < spec.min) | (raw > spec.max))
        value = raw.mask(bad)
        seen_ts = ts_series.where(value.notna()).groupby(machines, sort=False).ffill()
        last = value.groupby(machines, sort=False).ffill()
        fill = value.isna() & last.notna() & (ts_series - seen_ts <= short_gap_ms)
        value = value.where(~fill, last)
        out[clean_column(sensor)] = value
        out_of_range += bad.to_numpy()
        imputed += fill.to_numpy()
        unfilled += value.isna().to_numpy()
    previous = ts_series.groupby(machines, sort=False).shift(1)
    out["out_of_range"] = out_of_range
    out["imputed"] = imputed
    out["unfilled"] = unfilled
    out["long_gap"] = ((ts_series - previous) > short_gap_ms).to_numpy()
    out["condition"] = condition_of(out, machine_type, condition_decimals)
    return out.loc[frame.index]


def condition_of(cleaned: pd.DataFrame, machine_type: MachineType, decimals: int) -> pd.Series:
    """The operating condition as text, or None (no condition keys, or one of them missing)."""
    keys = machine_type.condition_keys
    if not keys:
        return pd.Series([None] * len(cleaned), index=cleaned.index, dtype=object)
    parts = []
    missing = np.zeros(len(cleaned), dtype=bool)
    for key in keys:
        column = cleaned[clean_column(key)]
        missing |= column.isna().to_numpy()
        rounded = column.round(decimals).fillna(0.0) + 0.0  # + 0.0 turns -0.0 into 0.0
        parts.append(f"{key}=" + rounded.map(lambda v: f"{v:.{decimals}f}"))
    text = parts[0]
    for part in parts[1:]:
        text = text + "|" + part
    return text.where(~missing, None).astype(object)
