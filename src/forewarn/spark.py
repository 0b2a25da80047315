"""The one place a SparkSession is built, so every Spark job runs with the same, tested settings.

On a cluster the same jobs run unchanged through ``spark-submit`` (the master comes from there); locally
we use ``local[*]`` with the Kafka connector jars that ``make setup`` fetched with mvn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from forewarn.errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def connector_jars(libs_dir: Path) -> list[str]:
    """The Kafka connector and the dependencies pyspark does not already ship (duplicates of Spark's own
    jars, e.g. Scala or Hadoop client, would shadow them with other versions)."""
    import pyspark

    if not (libs_dir / ".complete").exists():
        raise UserError(
            f"Spark's Kafka connector is not in {libs_dir}. Run 'make setup' (or 'forewarn stack install')."
        )
    bundled = {_artifact(jar.name) for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return sorted(str(jar) for jar in libs_dir.glob("*.jar") if _artifact(jar.name) not in bundled)


def _artifact(jar_name: str) -> str:
    """'kafka-clients-3.9.2.jar' -> 'kafka-clients' (the name without its version)."""
    parts = jar_name.removesuffix(".jar").split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def spark_session(app_name: str, *, with_kafka: bool = False, master: str | None = None,
                  shuffle_partitions: int = 8) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # The default 1 GB driver runs out of heap on a few hundred thousand readings (local mode: the
        # driver is the executor).
        .config("spark.driver.memory", os.environ.get("FOREWARN_SPARK_DRIVER_MEMORY", "3g"))
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
    )
    if master or not _submitted():
        builder = builder.master(master or "local[2]")
    if with_kafka:
        from forewarn.stack.config import StackSettings

        builder = builder.config("spark.jars", ",".join(connector_jars(StackSettings().spark_kafka_libs_dir)))
    return builder.getOrCreate()


def _submitted() -> bool:
    return "SPARK_SUBMIT_OPTS" in os.environ or os.environ.get("PYSPARK_SUBMIT_ARGS") is not None
