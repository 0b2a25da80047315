"""``etl stream``: Kafka topics -> the Parquet lake, one Structured Streaming query per dataset.

Exactly-once files: each query's checkpoint records the Kafka offsets of every micro-batch before it
runs, and the file sink commits a batch's files to ``_spark_metadata`` only once they are written, so a
query stopped or killed at any point and started again rewrites the unfinished batch and never a
committed one. Readers that go through the dataset's root folder see every record exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from forewarn.errors import UserError
from forewarn.etl import lake
from forewarn.kafka import spark_options

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from forewarn.settings import KafkaSettings

log = logging.getLogger(__name__)

Mode = Literal["once", "until_idle", "duration", "forever"]
ALL_DATASETS: tuple[str, ...] = tuple(item.name for item in lake.DATASETS)


@dataclass(frozen=True)
class StreamPlan:
    lake: Path
    checkpoint: Path
    bootstrap_servers: str
    topics: dict[str, str]  # lake dataset -> Kafka topic (prefix applied)
    kafka_options: dict[str, str] = field(default_factory=dict)  # connection (forewarn.kafka.spark_options)
    interval_s: float = 30.0
    max_offsets_per_trigger: int | None = None


@dataclass
class StreamReport:
    batches: dict[str, int] = field(default_factory=dict)
    input_rows: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def plan_for(settings: KafkaSettings, lake_dir: Path, checkpoint: Path | None, *, interval_s: float = 30.0,
             max_offsets_per_trigger: int | None = None,
             datasets: Sequence[str] = ALL_DATASETS) -> StreamPlan:
    return StreamPlan(
        lake=Path(lake_dir),
        checkpoint=Path(checkpoint) if checkpoint else Path(lake_dir) / lake.CHECKPOINTS,
        bootstrap_servers=settings.bootstrap_servers,
        topics={name: settings.topic(lake.dataset(name).topic) for name in datasets},
        kafka_options=spark_options(settings),
        interval_s=interval_s,
        max_offsets_per_trigger=max_offsets_per_trigger,
    )


def existing_topics(plan: StreamPlan, settings: KafkaSettings) -> tuple[dict[str, str], list[str]]:
    """(the plan's datasets whose topic exists, messages about those skipped). The broker does not
    auto-create topics, and a query on a missing one would only wait."""
    from forewarn import kafka

    try:
        present = set(kafka.admin(settings).list_topics(timeout=10).topics)
    except Exception as exc:  # noqa: BLE001 - any client error means the same to the operator
        raise UserError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}; is it up? "
                        "Check with: forewarn stack status") from None
    found = {name: topic for name, topic in plan.topics.items() if topic in present}
    skipped = [f"topic {topic} does not exist yet: {name} skipped" for name, topic in plan.topics.items()
               if topic not in present]
    if lake.READINGS in plan.topics and lake.READINGS not in found:
        raise UserError(f"topic {plan.topics[lake.READINGS]} does not exist; 'forewarn stack up' creates the "
                        "project's topics (with FOREWARN_KAFKA__TOPIC_PREFIX applied)")
    return found, skipped


def start_queries(spark: SparkSession, plan: StreamPlan, topics_by_dataset: dict[str, str], *,
                  available_now: bool) -> dict[str, StreamingQuery]:
    queries: dict[str, StreamingQuery] = {}
    try:
        for name, topic in topics_by_dataset.items():
            reader = (
                spark.readStream.format("kafka")
                .options(**(plan.kafka_options or {"kafka.bootstrap.servers": plan.bootstrap_servers}))
                .option("subscribe", topic)
                .option("startingOffsets", "earliest")
                .option("failOnDataLoss", "true")
            )
            if plan.max_offsets_per_trigger:
                reader = reader.option("maxOffsetsPerTrigger", str(plan.max_offsets_per_trigger))
            writer = (
                lake.to_lake_rows(reader.load(), lake.dataset(name))
                .writeStream.format("parquet")
                .queryName(f"lake-{name}-{zlib.crc32(str(plan.lake).encode()):08x}")
                .option("path", str(lake.dataset_path(plan.lake, name)))
                .option("checkpointLocation", str(lake.checkpoint_path(plan.checkpoint, name)))
                .partitionBy(lake.DATE_COLUMN)
                .outputMode("append")
            )
            writer = writer.trigger(availableNow=True) if available_now else writer.trigger(
                processingTime=f"{plan.interval_s} seconds")
            queries[name] = writer.start()
    except Exception:
        stop_all(queries)
        raise
    return queries


def stop_all(queries: dict[str, StreamingQuery]) -> None:
    for query in queries.values():
        if query.isActive:
            query.stop()


def run(spark: SparkSession, plan: StreamPlan, settings: KafkaSettings, mode: Mode, seconds: float = 0.0,
        stop: threading.Event | None = None) -> StreamReport:
    """Run the lake queries: ``once`` (everything available now, then stop), ``until_idle`` (stop after
    ``seconds`` without new data), ``duration`` (stop after ``seconds``) or ``forever`` (until ``stop``)."""
    topics_by_dataset, skipped = existing_topics(plan, settings)
    for message in skipped:
        log.warning(message)
    stop = stop or threading.Event()
    queries = start_queries(spark, plan, topics_by_dataset, available_now=mode == "once")
    try:
        if mode == "once":
            for query in queries.values():
                while not query.awaitTermination(1):
                    if stop.is_set():
                        break
        else:
            _watch(queries, mode, seconds, stop)
        for query in queries.values():
            error = query.exception()
            if error is not None:
                raise RuntimeError(f"lake query {query.name} failed: {error}")
    finally:
        stop_all(queries)
    report = StreamReport(skipped=skipped)
    for name, query in queries.items():
        progress = [p for p in query.recentProgress if p]
        report.batches[name] = len({p["batchId"] for p in progress if p.get("numInputRows", 0) > 0})
        report.input_rows[name] = sum(int(p.get("numInputRows", 0)) for p in progress)
    return report


def _watch(queries: dict[str, StreamingQuery], mode: Mode, seconds: float, stop: threading.Event) -> None:
    started = last_busy = time.monotonic()
    seen_batches: set[tuple[str, int]] = set()
    while not stop.wait(0.5):
        now = time.monotonic()
        for name, query in queries.items():
            if not query.isActive:
                raise RuntimeError(f"lake query {name} stopped: {query.exception()}")
            status = query.status
            if status.get("isTriggerActive") or status.get("isDataAvailable"):
                last_busy = now
            for progress in query.recentProgress:
                key = (name, int(progress["batchId"]))
                if key not in seen_batches:
                    seen_batches.add(key)
                    if progress.get("numInputRows", 0) > 0:
                        last_busy = now
        if mode == "duration" and now - started >= seconds:
            return
        if mode == "until_idle" and now - last_busy >= seconds:
            return
