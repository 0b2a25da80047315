"""Decode lake readings exactly as the online features service decodes a Kafka record.

Train/serve parity starts here: the feature module must see the very values the service fed it. Both
sides run the one topic-side check, :mod:`forewarn.reading_check`, and tests/unit/test_etl_rows.py runs
the service's ``FeatureProcessor`` and :func:`decode_records` on the same records to keep them in step:

* the record's bytes are parsed with orjson; a record that is not JSON, or a reading that
  :func:`~forewarn.reading_check.check_reading` refuses, is rejected with the service's reason;
* a value counts when its sensor belongs to the reading's machine type and it is a finite JSON number
  (:func:`~forewarn.reading_check.is_value`); anything else (null, text, a boolean, an object) is NaN
  (missing), as the service documents it.

Spark runs this per bucket of machines (``applyInPandas``, see :mod:`forewarn.etl.rows`), so the check is
the same Python function online and offline, not a second copy in column expressions.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import orjson
import pandas as pd

from forewarn.assets import AssetConfig
from forewarn.reading_check import check_reading, is_value, not_json

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
            reasons[row] = not_json(exc).message
            continue
        rejection = check_reading(reading, own)
        if rejection is not None:
            reasons[row] = rejection.message
            continue
        index = own[reading["machine_type"]]
        ids[row], types[row], ts[row] = reading["machine_id"], reading["machine_type"], reading["ts"]
        site = reading.get("site")
        sites[row] = site if isinstance(site, str) else None
        for sensor, value in reading["values"].items():
            column = index.get(sensor)
            if column is not None and is_value(value):
                values[row, column] = value
    ts_column = pd.array(ts, dtype="Int64")
    ts_column[np.array([r is not None for r in reasons], dtype=bool)] = pd.NA
    frame = pd.DataFrame({"machine_id": ids, "machine_type": types, "ts": ts_column, "site": sites,
                          "reason": reasons})
    for i, sensor in enumerate(sensors):
        frame[value_column(sensor)] = values[:, i]
    return frame

