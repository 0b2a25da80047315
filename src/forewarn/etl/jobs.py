"""The ETL commands' wiring: one Spark session per command, settings from the environment, clean stop."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from forewarn.etl.spec import BuildSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from forewarn.etl.build import BuildResult
    from forewarn.etl.stream import Mode, StreamReport

DEFAULT_LAKE = Path("data/lake")
DEFAULT_TRAINING = Path("data/training")


def session(app_name: str, *, with_kafka: bool, shuffle_partitions: int = 8) -> SparkSession:
    """The project's Spark session, with Python workers on this interpreter (the venv, not PATH's python3)."""
    from forewarn.spark import spark_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = spark_session(app_name, with_kafka=with_kafka, shuffle_partitions=shuffle_partitions)
    spark.sparkContext.setLogLevel("WARN")
    return spark


def stream_command(lake_dir: Path, checkpoint: Path | None, mode: Mode, seconds: float, *, interval_s: float,
                   max_offsets_per_trigger: int | None) -> StreamReport:
    from forewarn.etl import stream
    from forewarn.settings import ForewarnSettings

    settings = ForewarnSettings()
    plan = stream.plan_for(settings.kafka, lake_dir, checkpoint, interval_s=interval_s,
                           max_offsets_per_trigger=max_offsets_per_trigger)
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spark = session("forewarn-etl-stream", with_kafka=True)
    try:
        return stream.run(spark, plan, settings.kafka, mode, seconds, stop)
    finally:
        spark.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def build_command(lake_dir: Path, out_dir: Path, spec: BuildSpec, buckets: int | None = None) -> BuildResult:
    from forewarn.etl.build import build

    spark = session("forewarn-etl-build", with_kafka=False)
    try:
        return build(spark, lake_dir, out_dir, spec, buckets=buckets)
    finally:
        spark.stop()
