"""Training rows for a group of machines: decode, features, cleaning, labels. Pure pandas, no Spark.

Spark calls :func:`build_rows` once per machine type and bucket of machines (``applyInPandas``); a
machine's rows never span two buckets, and the feature engine's results depend only on each machine's
own readings and their order, so bucketing changes nothing but speed (the engine is vectorized across
machines: ~17 us a reading for hundreds of machines at once, ~0.9 ms for one machine alone).

Order: readings are applied in arrival order, Kafka (topic, partition, offset, position in an envelope)
— what the online service saw, since a machine's readings all travel in one partition and one
partition's order is total — falling back to event time for rows without Kafka coordinates. Every
lake row comes back with a ``status``:
``accepted`` (a training row), ``rejected`` (the service would dead-letter it; ``reason`` says why),
``late_or_duplicate`` (the engine dropped it, as online) or ``exact_duplicate`` (accepted by the engine,
but the very same reading was accepted before: dropped from the training set, after feeding the
features exactly as online).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forewarn.assets import AssetConfig
from forewarn.etl import clean as cleaning
from forewarn.etl import labels as labelling
from forewarn.etl.decode import all_sensors, decode_records, value_column
from forewarn.etl.spec import BuildSpec
from forewarn.features import ACCEPTED_COLUMN, compute_frame, feature_names

KAFKA_ORDER = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_index")
ID_COLUMNS: tuple[tuple[str, str], ...] = (
    ("machine_id", "string"), ("machine_type", "string"), ("ts", "long"), ("site", "string"),
    ("kafka_topic", "string"), ("kafka_partition", "int"), ("kafka_offset", "long"), ("kafka_index", "int"),
    ("arrival", "long"), ("status", "string"), ("reason", "string"),
)
ACCEPTED = "accepted"
RESET_COLUMN = "reset_before"


@dataclass(frozen=True)
class RowsContext:
    config: AssetConfig
    spec: BuildSpec
    data_end_ts: int


def union_feature_names(config: AssetConfig) -> list[str]:
    seen: dict[str, None] = {}
    for machine_type in config.machine_types.values():
        for name in feature_names(machine_type):
            seen.setdefault(name, None)
    return list(seen)


def output_columns(config: AssetConfig) -> list[tuple[str, str]]:
    """Every column :func:`build_rows` returns, in order, with its type (string/int/long/double/boolean)."""
    sensors = all_sensors(config)
    columns = list(ID_COLUMNS)
    columns += [(value_column(s), "double") for s in sensors]
    columns += [(cleaning.clean_column(s), "double") for s in sensors]
    columns += [("out_of_range", "int"), ("imputed", "int"), ("unfilled", "int"), ("long_gap", "boolean"),
                ("condition", "string"), (RESET_COLUMN, "boolean")]
    columns += [(name, "double") for name in union_feature_names(config)]
    columns += [(labelling.LABEL, "int"), ("rul", "double"), ("time_to_failure_ms", "long"),
                ("label_source", "string")]
    return columns


def arrival_order(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in (*KAFKA_ORDER, "ts") if c in frame.columns]
    return frame.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)


def build_rows(readings: pd.DataFrame, events: dict[str, labelling.MachineEvents] | None, ctx: RowsContext
               ) -> pd.DataFrame:
    """``readings``: lake rows (Kafka coordinates and ``value`` bytes); ``events``: label events by machine
    (:func:`forewarn.etl.labels.events_by_machine`). Returns :func:`output_columns`, one row per reading."""
    config, spec = ctx.config, ctx.spec
    coords = pd.DataFrame({c: readings[c] if c in readings.columns else None for c in KAFKA_ORDER})
    decoded = decode_records(readings["value"].tolist(), config)
    frame = arrival_order(pd.concat([coords.reset_index(drop=True), decoded], axis=1))
    n = len(frame)
    union = union_feature_names(config)
    position = {name: i for i, name in enumerate(union)}
    features = np.full((n, len(union)), np.nan)
    status = np.where(frame["reason"].notna(), "rejected", "late_or_duplicate").astype(object)
    resets = np.zeros(n, dtype=bool)
    per_machine = events or {}

    for type_name, machine_type in config.machine_types.items():
        rows = np.flatnonzero((frame["machine_type"] == type_name).to_numpy() & frame["reason"].isna().to_numpy())
        if not len(rows):
            continue
        sensors = list(machine_type.sensor_names)
        sub = frame.iloc[rows][["machine_id", "ts", *(value_column(s) for s in sensors)]]
        sub = sub.rename(columns={value_column(s): s for s in sensors})
        reset_col = None
        if spec.feature_resets and per_machine:
            sub = sub.assign(**{RESET_COLUMN: _resets(sub, per_machine)})
            resets[rows] = sub[RESET_COLUMN].to_numpy()
            reset_col = RESET_COLUMN
        result = compute_frame(sub, machine_type, config.allowed_lateness_ms, reset_col=reset_col)
        accepted = result.pop(ACCEPTED_COLUMN).to_numpy()
        columns = np.array([position[name] for name in result.columns], dtype=np.intp)
        features[np.ix_(rows, columns)] = result.to_numpy()
        status[rows[accepted]] = ACCEPTED

    frame["status"] = status
    value_columns = [value_column(s) for s in all_sensors(config)]
    accepted_rows = frame["status"] == ACCEPTED
    repeats = frame[accepted_rows].duplicated(["machine_id", "machine_type", "ts", *value_columns], keep="first")
    frame.loc[repeats[repeats].index, "status"] = "exact_duplicate"
    frame["arrival"] = frame.groupby("machine_id", sort=False, dropna=False).cumcount().astype("int64")
    frame[RESET_COLUMN] = resets

    out = frame.copy()
    extra = _training_columns(frame[frame["status"] == ACCEPTED], ctx, per_machine)
    feature_frame = pd.DataFrame(features, columns=union, index=frame.index)
    out = pd.concat([out, extra.reindex(frame.index), feature_frame], axis=1)
    return _typed(out, output_columns(config))


def _resets(sub: pd.DataFrame, per_machine: dict[str, labelling.MachineEvents]) -> np.ndarray:
    resets = np.zeros(len(sub), dtype=bool)
    for machine_id, group in sub.groupby("machine_id", sort=False):
        events = per_machine.get(str(machine_id))
        if events is not None and len(events.maintenance):
            where = sub.index.get_indexer(group.index)
            resets[where] = labelling.reset_rows(group["ts"].to_numpy(), events.maintenance)
    return resets


def _training_columns(kept: pd.DataFrame, ctx: RowsContext, per_machine: dict[str, labelling.MachineEvents]
                      ) -> pd.DataFrame:
    parts = []
    for type_name, group in kept.groupby("machine_type", sort=False):
        machine_type = ctx.config.machine_type(str(type_name))
        short_gap = int(ctx.spec.short_gap_intervals * machine_type.sampling_interval_ms)
        parts.append(cleaning.clean(group, machine_type, short_gap, ctx.spec.condition_decimals))
    cleaned = pd.concat(parts) if parts else pd.DataFrame(index=kept.index)
    labelled = labelling.label(kept, per_machine, ctx.spec, ctx.data_end_ts)
    return pd.concat([cleaned, labelled], axis=1)


def _typed(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> pd.DataFrame:
    """Exactly ``columns``, with dtypes Arrow maps to the Spark schema (nullable ints stay nullable)."""
    out = {}
    n = len(frame)
    for name, kind in columns:
        column = frame[name] if name in frame.columns else pd.Series([None] * n, index=frame.index)
        if kind == "double":
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif kind == "int":
            out[name] = pd.array(column, dtype="Int32")
        elif kind == "long":
            out[name] = pd.array(column, dtype="Int64")
        elif kind == "boolean":
            out[name] = pd.array(column, dtype="boolean")
        else:
            out[name] = column.astype(object).where(column.notna(), None)
    return pd.DataFrame(out, index=frame.index)
