"""Decode lake readings exactly as the online features service decodes a Kafka record.

Train/serve parity starts here: the feature module must see the very values the service fed it. The
rules mirror ``services/features/processor.py`` (``_decode`` and ``_apply_type``) and
tests/unit/test_etl_decode.py runs both on the same records to keep them in step:

* the record's bytes are parsed with orjson; not JSON, not an object, an unknown ``machine_type``, a
  ``machine_id`` that is not a non-empty string, a ``ts`` that is not an integer, or ``values`` that is
  not an object -> rejected with the service's reason;
* a value counts when its sensor belongs to the reading's machine type and it is a finite JSON number;
  anything else (null, text, a boolean, an object) is NaN (missing), as the service documents it.

One deliberate difference: a ``ts`` beyond +-2**53 ms is rejected here ("ts out of range"); the engine
would refuse the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import orjson
import pandas as pd

from forewarn.assets import AssetConfig

_MAX_EXACT_MS = 2**53

VALUE_PREFIX = "value__"


def value_column(sensor: str) -> str:
    return f"{VALUE_PREFIX}{sensor}"


def all_sensors(config: AssetConfig) -> list[str]:
    """The union of every machine type's sensors, in first-seen order (the lake's wide columns)."""
    seen: dict[str, None] = {}
    for machine_type in config.machine_types.values():
        for sensor in machine_type.sensor_names:
            seen.setdefault(sensor, None)
    return list(seen)


def decode_records(raw_values: Iterable[bytes | None], config: AssetConfig) -> pd.DataFrame:
    """One row per record: ``machine_id, machine_type, ts, site, reason`` (None when decoded; the other
    fields are then null) and
    ``value__{sensor}`` for every sensor of the config (NaN: missing, or not the reading's type)."""
    sensors = all_sensors(config)
    union_index = {s: i for i, s in enumerate(sensors)}
    own = {name: {s: union_index[s] for s in mt.sensor_names} for name, mt in config.machine_types.items()}
    raws = list(raw_values)
    n = len(raws)
    values = np.full((n, len(sensors)), np.nan)
    ids: list[str | None] = [None] * n
    types: list[str | None] = [None] * n
    sites: list[str | None] = [None] * n
    ts = np.zeros(n, dtype=np.int64)
    reasons: list[str | None] = [None] * n
    for row, raw in enumerate(raws):
        try:
            reading = orjson.loads(raw)  # type: ignore[arg-type]  # None (a tombstone) fails here, as online
        except orjson.JSONDecodeError as exc:
            reasons[row] = f"not JSON: {exc}"
            continue
        reason = _reject_reason(reading, own)
        if reason:
            reasons[row] = reason
            continue
        index = own[reading["machine_type"]]
        ids[row], types[row], ts[row] = reading["machine_id"], reading["machine_type"], reading["ts"]
        site = reading.get("site")
        sites[row] = site if isinstance(site, str) else None
        for sensor, value in reading["values"].items():
            column = index.get(sensor)
            if column is not None and _is_number(value):
                values[row, column] = value
    ts_column = pd.array(ts, dtype="Int64")
    ts_column[np.array([r is not None for r in reasons], dtype=bool)] = pd.NA
    frame = pd.DataFrame({"machine_id": ids, "machine_type": types, "ts": ts_column, "site": sites,
                          "reason": reasons})
    for i, sensor in enumerate(sensors):
        frame[value_column(sensor)] = values[:, i]
    return frame


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _reject_reason(reading: object, types: dict[str, dict[str, int]]) -> str | None:
    if not isinstance(reading, dict):
        return "not a JSON object"
    machine_type = reading.get("machine_type")
    if not isinstance(machine_type, str) or machine_type not in types:
        return f"unknown machine_type {machine_type!r}"
    if not isinstance(reading.get("machine_id"), str) or not reading["machine_id"]:
        return "machine_id missing or not a string"
    ts = reading.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return "ts must be epoch milliseconds (integer)"
    if not isinstance(reading.get("values"), dict):
        return "values must be an object of sensor name to number"
    if abs(ts) >= _MAX_EXACT_MS:
        return "ts out of range"
    return None
