"""``etl build``: the lake -> a labelled training set (Parquet) and its manifest.

Stages (Spark): read the lake through its commit logs; drop Kafka records seen twice (a lake rebuilt
from a new checkpoint); gather label events; per bucket of machines run :func:`forewarn.etl.rows.build_rows`
(decode, features through the shared feature module, cleaning, labels) with ``applyInPandas``;
normalize cleaned values per machine type and operating condition; optionally keep one row per machine
and grain; write the dataset partitioned by machine type, then hash what was written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forewarn.assets import AssetConfig, load_asset_config
from forewarn.errors import UserError
from forewarn.etl import lake
from forewarn.etl.clean import clean_column
from forewarn.etl.decode import all_sensors
from forewarn.etl.labels import LABEL, events_by_machine
from forewarn.etl.manifest import write_manifest
from forewarn.etl.rows import ACCEPTED, KAFKA_ORDER, RowsContext, build_rows, output_columns
from forewarn.etl.spec import BuildSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

DATASET_DIR = "dataset"
NORM_PREFIX = "norm__"
ROWS_PER_BUCKET = 200_000
_EXACT = "decimal(38,10)"
EVENT_DDL = "machine_id STRING, kind STRING, ts BIGINT, end_ts BIGINT"


@dataclass(frozen=True)
class BuildResult:
    dataset: Path
    manifest_path: Path
    manifest: dict[str, Any]


def norm_column(sensor: str) -> str:
    return f"{NORM_PREFIX}{sensor}"


def spark_schema(columns: list[tuple[str, str]]) -> StructType:
    from pyspark.sql import types as T

    kinds = {"string": T.StringType(), "int": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(),
             "boolean": T.BooleanType()}
    return T.StructType([T.StructField(name, kinds[kind], True) for name, kind in columns])


def read_readings(spark: SparkSession, lake_dir: Path) -> DataFrame:
    path = lake.dataset_path(lake_dir, lake.READINGS)
    if not path.is_dir():
        raise UserError(f"no readings in {path}; fill the lake first with 'forewarn etl stream --once'")
    return spark.read.parquet(str(path))


def _read_optional(spark: SparkSession, lake_dir: Path, name: str) -> DataFrame | None:
    path = lake.dataset_path(lake_dir, name)
    if not path.is_dir() or not any(path.rglob("*.parquet")):
        return None
    return spark.read.parquet(str(path))


def read_events(spark: SparkSession, lake_dir: Path) -> tuple[DataFrame, dict[str, int]]:
    """Label events (machine_id, kind, ts, end_ts) from ground truth and feedback, deduplicated: both
    topics are written at least once. Also the count of each kind, for the manifest."""
    from pyspark.sql import functions as F

    frames = []
    truth = _read_optional(spark, lake_dir, lake.GROUND_TRUTH)
    if truth is not None:
        frames.append(truth.where(F.col("kind").isin("failure", "maintenance"))
                      .select("machine_id", "kind", "ts", F.lit(None).cast("bigint").alias("end_ts")))
    feedback = _read_optional(spark, lake_dir, lake.FEEDBACK)
    if feedback is not None:
        columns = set(feedback.columns)

        def col(name: str) -> Any:
            return F.col(name) if name in columns else F.lit(None).cast("bigint")

        frames.append(feedback.where(F.col("kind") == "confirmed_failure")
                      .select("machine_id", "kind", F.coalesce(col("failure_ts"), col("window_end_ts")).alias("ts"),
                              F.lit(None).cast("bigint").alias("end_ts")))
        frames.append(feedback.where(F.col("kind") == "false_alarm")
                      .select("machine_id", "kind", col("window_start_ts").alias("ts"),
                              col("window_end_ts").alias("end_ts")))
    if not frames:
        return spark.createDataFrame([], EVENT_DDL), {}
    events = frames[0]
    for frame in frames[1:]:
        events = events.unionByName(frame)
    events = events.where(F.col("machine_id").isNotNull() & F.col("ts").isNotNull()).dropDuplicates()
    counts = {row["kind"]: int(row["count"]) for row in events.groupBy("kind").count().collect()}
    return events, counts


def feature_rows(spark: SparkSession, lake_dir: Path, config: AssetConfig, spec: BuildSpec,
                 buckets: int | None = None) -> tuple[DataFrame, dict[str, Any]]:
    """Every lake reading with its status, features, cleaning and labels (not yet normalized).

    Groups are (machine type, bucket of machine ids), both as the lake parsed them (strings or null, as
    the decoder reads them): online, a machine's state lives in its type's engine, so one group per type
    and bucket holds every reading that shares state, and the engine runs vectorized across the bucket's
    machines. Label events are few next to readings and travel to the workers as a broadcast."""
    from pyspark.sql import functions as F

    raw = read_readings(spark, lake_dir)
    missing = [c for c in (*KAFKA_ORDER, "value", "machine_id", "machine_type", "ts") if c not in raw.columns]
    if missing:
        raise UserError(f"{lake.dataset_path(lake_dir, lake.READINGS)} lacks columns {missing}: not a lake "
                        "written by 'forewarn etl stream'")
    readings = raw.select(*KAFKA_ORDER, "value", "machine_type", "ts", F.col("machine_type").alias("_type"),
                          F.col("machine_id").alias("_id"))
    with_coords = readings.where(F.col("kafka_offset").isNotNull()).dropDuplicates(list(KAFKA_ORDER))
    readings = with_coords.unionByName(readings.where(F.col("kafka_offset").isNull()))
    summary = readings.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("_id").alias("machines"),
        F.countDistinct("_type").alias("types"),
        F.max(F.when(F.col("machine_type").isin(list(config.machine_types)), F.col("ts"))).alias("data_end_ts"),
    ).collect()[0]
    stats: dict[str, Any] = {"lake_rows": raw.count(), "unique_records": int(summary["rows"])}
    if summary["data_end_ts"] is None:
        raise UserError(f"the lake at {lake_dir} holds no readings of the machine types in config "
                        f"{config.name!r} ({', '.join(config.machine_types)})")
    if buckets is None:
        # A bucket per core and type is fastest (the engine vectorizes across a bucket's machines); more
        # only when a bucket's readings would not fit a worker comfortably.
        types = max(1, int(summary["types"]))
        per_type = max(math.ceil(spark.sparkContext.defaultParallelism / types),
                       math.ceil(int(summary["rows"]) / types / ROWS_PER_BUCKET))
        buckets = max(1, min(int(summary["machines"]) or 1, per_type))
    events, event_counts = read_events(spark, lake_dir)
    stats["events"] = event_counts
    shared = spark.sparkContext.broadcast(events_by_machine(events.toPandas()))
    ctx = RowsContext(config=config, spec=spec, data_end_ts=int(summary["data_end_ts"]))
    stats["data_end_ts"] = ctx.data_end_ts
    columns = output_columns(config)

    def apply(group: Any) -> Any:
        return build_rows(group, shared.value, ctx)

    bucket = F.pmod(F.xxhash64(F.coalesce(F.col("_id"), F.lit(""))), F.lit(buckets)).alias("_bucket")
    rows = (readings.select(*KAFKA_ORDER, "value", "_type", bucket).groupBy("_type", "_bucket")
            .applyInPandas(apply, spark_schema(columns)))
    return rows, stats


def normalize(rows: DataFrame, config: AssetConfig, spark: SparkSession) -> tuple[DataFrame, dict[str, Any]]:
    """``norm__{sensor}`` = z-score of ``clean__{sensor}`` within (machine type, operating condition), and
    ``condition_id`` (0.. in the sorted order of a type's conditions; 0 for types without condition keys,
    -1 when a condition key is missing). Returns the statistics too, for normalization.json."""
    from pyspark.sql import functions as F

    sensors = all_sensors(config)
    aggs = []
    for sensor in sensors:
        # Exact decimal sums: the order Spark adds partial sums in varies with the shuffle, and a double
        # sum would then differ in its last bits from run to run (and so would the content hash).
        value = F.col(clean_column(sensor))
        aggs += [F.count(value).alias(f"n__{sensor}"),
                 F.sum(value.cast(_EXACT)).alias(f"sum__{sensor}"),
                 F.sum((value * value).cast(_EXACT)).alias(f"sq__{sensor}")]
    collected = sorted(rows.groupBy("machine_type", "condition").agg(*aggs).collect(),
                       key=lambda r: (r["machine_type"], r["condition"] is None, r["condition"] or ""))
    table = [{**row.asDict(), **{k: v for s in sensors for k, v in _moments(row, s).items()}} for row in collected]
    stats: dict[str, Any] = {}
    records = []
    for row in table:
        machine_type = config.machine_type(row["machine_type"])
        known = [r["condition"] for r in table if r["machine_type"] == row["machine_type"] and r["condition"]]
        if not machine_type.condition_keys:
            condition_id = 0
        elif row["condition"] is None:
            condition_id = -1
        else:
            condition_id = known.index(row["condition"])
        per_sensor = {s: {"mean": row[f"mean__{s}"], "std": row[f"std__{s}"], "count": row[f"n__{s}"]}
                      for s in machine_type.sensor_names}
        stats.setdefault(row["machine_type"], []).append(
            {"condition": row["condition"], "condition_id": condition_id, "sensors": per_sensor})
        records.append((row["machine_type"], row["condition"], condition_id,
                        *[row[f"mean__{s}"] if s in machine_type.sensors else None for s in sensors],
                        *[row[f"std__{s}"] if s in machine_type.sensors else None for s in sensors]))
    ddl = ", ".join(["machine_type STRING", "condition STRING", "condition_id INT",
                     *[f"`mean__{s}` DOUBLE" for s in sensors], *[f"`std__{s}` DOUBLE" for s in sensors]])
    lookup = spark.createDataFrame(records, ddl).withColumnRenamed("machine_type", "_type") \
        .withColumnRenamed("condition", "_condition")
    joined = rows.join(
        F.broadcast(lookup),
        (rows["machine_type"] == lookup["_type"]) & rows["condition"].eqNullSafe(lookup["_condition"]),
        "left",
    )
    normalized = []
    for sensor in sensors:
        value, mean, std = F.col(clean_column(sensor)), F.col(f"mean__{sensor}"), F.col(f"std__{sensor}")
        normalized.append(F.when(std > 0, (value - mean) / std).when(value.isNotNull(), F.lit(0.0))
                          .alias(norm_column(sensor)))
    out = joined.select(*[F.col(c) for c in rows.columns], F.col("condition_id"), *normalized)
    return out, stats


def _moments(row: Any, sensor: str) -> dict[str, float | None]:
    with localcontext() as context:
        context.prec = 60
        n = row[f"n__{sensor}"]
        if not n:
            return {f"mean__{sensor}": None, f"std__{sensor}": None}
        mean = row[f"sum__{sensor}"] / n
        variance = max(row[f"sq__{sensor}"] / n - mean * mean, Decimal(0))
        return {f"mean__{sensor}": float(mean), f"std__{sensor}": float(variance.sqrt())}


def to_grain(frame: DataFrame, grain_ms: int) -> DataFrame:
    """One row per machine and grain: the last reading (the features the online service would hold at
    the end of the interval), with ``grain_rows`` readings behind it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = [F.col("machine_id"), F.floor(F.col("ts") / F.lit(grain_ms))]
    latest = Window.partitionBy(*key).orderBy(F.col("ts").desc(), F.col("arrival").desc())
    return (frame.withColumn("_rank", F.row_number().over(latest))
            .withColumn("grain_rows", F.count(F.lit(1)).over(Window.partitionBy(*key)))
            .where(F.col("_rank") == 1).drop("_rank"))


def build(spark: SparkSession, lake_dir: Path, out_dir: Path, spec: BuildSpec, *, buckets: int | None = None
          ) -> BuildResult:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    config = load_asset_config(spec.config)
    rows, stats = feature_rows(spark, Path(lake_dir), config, spec, buckets)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        by_status = {r["status"]: int(r["count"]) for r in rows.groupBy("status").count().collect()}
        training = rows.where(F.col("status") == ACCEPTED).drop("status", "reason")
        training, normalization = normalize(training, config, spark)
        if spec.grain_ms:
            training = to_grain(training, spec.grain_ms)
        dataset = Path(out_dir) / DATASET_DIR
        (training.sortWithinPartitions("machine_type", "machine_id", "ts")
         .write.mode("overwrite").option("maxRecordsPerFile", 1_000_000)
         .partitionBy("machine_type").parquet(str(dataset)))
    finally:
        rows.unpersist()
    written = spark.read.parquet(str(dataset))
    counts = _label_counts(written)
    manifest = write_manifest(
        out_dir=Path(out_dir), dataset=dataset, written=written, config=config, spec=spec,
        rows={**stats, "by_status": dict(sorted(by_status.items())), **counts},
        normalization=normalization, lake_dir=Path(lake_dir),
    )
    from forewarn.audit import actions as audit  # every training-set build goes on the audit trail

    audit.dataset_built(audit.default_trail(), audit.default_actor(), manifest=manifest, out_dir=Path(out_dir),
                        lake_dir=Path(lake_dir))
    return BuildResult(dataset=dataset, manifest_path=Path(out_dir) / "manifest.json", manifest=manifest)


def _label_counts(written: DataFrame) -> dict[str, Any]:
    from pyspark.sql import functions as F

    table = written.groupBy("machine_type", LABEL).count().collect()
    by_type: dict[str, dict[str, int]] = {}
    for row in table:
        label = "censored" if row[LABEL] is None else str(row[LABEL])
        by_type.setdefault(row["machine_type"], {})[label] = int(row["count"])
    totals: dict[str, int] = {}
    for labels in by_type.values():
        for label, count in labels.items():
            totals[label] = totals.get(label, 0) + count
    sources = {r["label_source"]: int(r["count"]) for r in written.groupBy("label_source").count().collect()}
    return {
        "training": int(sum(totals.values())),
        "labels": dict(sorted(totals.items())),
        "labels_by_machine_type": {k: dict(sorted(v.items())) for k, v in sorted(by_type.items())},
        "label_sources": dict(sorted(sources.items())),
        "machines": int(written.select(F.countDistinct("machine_id")).collect()[0][0]),
    }


