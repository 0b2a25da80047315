"""The data lake's layout and the Kafka-record-to-lake-row mapping (docs/DATA_LAKE.md is the spec).

Three datasets, one per source topic, each a Spark file-sink folder partitioned by ``date=YYYY-MM-DD``
(UTC event date). A Kafka record holds one JSON object or an envelope (a JSON array of them, see
:mod:`forewarn.readings_wire`); the lake has one row per object, with the record's coordinates and the
object's position in it (``kafka_index``): together they give the arrival order the online features
service saw. ``value`` keeps the object exactly: the record's own bytes for a single object (or for a
record that is not JSON), the object re-encoded by orjson for an envelope member (orjson decodes that to
the very same object). The parsed columns beside it are for convenience and are tolerant: a field that is
absent or of another type is null, never a failed batch.

Read a dataset through its root folder with Spark: the file sink's ``_spark_metadata`` log there lists
only committed files, so an interrupted batch never shows up twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from forewarn import topics

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

READINGS = "readings"
GROUND_TRUTH = "ground_truth"
FEEDBACK = "feedback"
CHECKPOINTS = "_checkpoints"
DATE_COLUMN = "date"
KAFKA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kafka_topic", "STRING"), ("kafka_partition", "INT"), ("kafka_offset", "BIGINT"), ("kafka_index", "INT"),
    ("kafka_timestamp", "TIMESTAMP"), ("kafka_key", "STRING"), ("value", "BINARY"),
)
# Event times outside 1970..9999 cannot name a date partition: such rows use the Kafka timestamp.
_MAX_EPOCH_MS = 253_402_300_799_999
_LONG = 2**63


@dataclass(frozen=True)
class Field:
    name: str  # lake column
    path: tuple[str, ...]  # where it is in the JSON object
    kind: str  # "string", "long" or "numbers" (an object of name -> finite number)

    @property
    def ddl(self) -> str:
        return {"string": "STRING", "long": "BIGINT", "numbers": "MAP<STRING, DOUBLE>"}[self.kind]


def _fields(spec: str) -> tuple[Field, ...]:
    """'machine_id:string alert_window.start_ts=window_start_ts:long' -> fields."""
    out = []
    for item in spec.split():
        where, kind = item.rsplit(":", 1)
        path, _, name = where.partition("=")
        out.append(Field(name or path.split(".")[-1], tuple(path.split(".")), kind))
    return tuple(out)


@dataclass(frozen=True)
class Dataset:
    name: str  # folder under the lake
    topic: str  # topic name before the settings' prefix
    fields: tuple[Field, ...]  # parsed columns
    date_from: str  # column whose epoch ms gives the date partition

    @property
    def ddl(self) -> str:
        columns = [*(f"{n} {t}" for n, t in KAFKA_COLUMNS), *(f"`{f.name}` {f.ddl}" for f in self.fields)]
        return ", ".join([*columns, f"{DATE_COLUMN} STRING"])


DATASETS: tuple[Dataset, ...] = (
    Dataset(READINGS, topics.SENSOR_READINGS, _fields(
        "machine_id:string machine_type:string ts:long site:string ingested_at:long values:numbers"), "ts"),
    Dataset(GROUND_TRUTH, topics.GROUND_TRUTH, _fields(
        "machine_id:string machine_type:string ts:long kind:string mode:string"), "ts"),
    Dataset(FEEDBACK, topics.FEEDBACK, _fields(
        "event_id:string kind:string alert_id:string dedup_key:string machine_id:string machine_type:string "
        "site:string failure_ts:long failure_mode:string alert_window.start_ts=window_start_ts:long "
        "alert_window.end_ts=window_end_ts:long alert_state:string operator:string received_at:long"),
        "received_at"),
)


def dataset(name: str) -> Dataset:
    for item in DATASETS:
        if item.name == name:
            return item
    raise KeyError(f"unknown lake dataset {name!r}; known: {', '.join(d.name for d in DATASETS)}")


def dataset_path(lake: Path, name: str) -> Path:
    return Path(lake) / name


def checkpoint_path(checkpoint: Path, name: str) -> Path:
    return Path(checkpoint) / name


def _get(obj: Any, field: Field) -> Any:
    for key in field.path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if field.kind == "string":
        return obj if isinstance(obj, str) else None
    if field.kind == "long":
        return obj if isinstance(obj, int) and not isinstance(obj, bool) and -_LONG <= obj < _LONG else None
    if not isinstance(obj, dict):
        return None
    return {str(k): float(v) for k, v in obj.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def explode(records: pd.DataFrame, spec: Dataset) -> pd.DataFrame:
    """Kafka records (kafka_* columns and ``value``) -> lake rows: one per JSON object (see module doc)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for record in records.itertuples(index=False):
        raw = record.value
        base = {name: getattr(record, name) for name, _ in KAFKA_COLUMNS if name not in ("kafka_index", "value")}
        try:
            decoded = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            decoded = None
        members = decoded if isinstance(decoded, list) else None
        objects = [(0, raw, decoded)] if members is None else [(i, orjson.dumps(o), o) for i, o in enumerate(members)]
        for index, value, obj in objects:
            row = {**base, "kafka_index": index, "value": value}
            for field in spec.fields:
                row[field.name] = _get(obj, field)
            rows.append(row)
    columns = [name for name, _ in KAFKA_COLUMNS] + [f.name for f in spec.fields]
    frame = pd.DataFrame(rows, columns=columns)
    event_ms = pd.to_numeric(frame[spec.date_from], errors="coerce")
    valid = event_ms.between(0, _MAX_EPOCH_MS)
    moment = pd.to_datetime(event_ms.where(valid), unit="ms")
    moment = moment.fillna(pd.to_datetime(frame["kafka_timestamp"]))
    frame[DATE_COLUMN] = moment.dt.strftime("%Y-%m-%d")
    for field in spec.fields:
        if field.kind == "long":
            frame[field.name] = pd.array(frame[field.name], dtype="Int64")
    frame["kafka_index"] = frame["kafka_index"].astype("int32")
    return frame


def to_lake_rows(records: DataFrame, spec: Dataset) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) -> lake rows of ``spec``."""
    from pyspark.sql import functions as F

    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield explode(batch, spec)

    return records.select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value"),
    ).mapInPandas(apply, spec.ddl)
