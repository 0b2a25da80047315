"""One-time installs: Kafka broker jars from Maven Central (through ``mvn``); ``redis-server``,
``prometheus`` and ``prometheus-alertmanager`` from Debian (apt).

All are idempotent: a completed jar folder has a marker file, and apt runs only when a program is
missing. Every failure says what to install or fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from forewarn.errors import UserError
from forewarn.stack.config import LOG4J_SLF4J_BINDING, SPARK_VERSION

_COMPLETE_MARKER = ".complete"
_UNREACHABLE_HINTS = (
    "Could not transfer",
    "UnknownHost",
    "Connection refused",
    "Connect to",
    "Network is unreachable",
    "timed out",
    "Could not resolve",
    # With no repository reachable, Maven cannot even download its dependency plugin.
    "No plugin found for prefix",
)

Report = Callable[[str], None]


def _pom(artifacts: Sequence[str]) -> str:
    deps = []
    for coordinate in artifacts:
        group, artifact, version = coordinate.split(":")
        deps.append(
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>forewarn</groupId><artifactId>fetch</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{''.join(deps)}</dependencies></project>"
    )


def fetch_maven_jars(artifacts: Sequence[str], target: Path, report: Report) -> Path:
    """Copy ``artifacts`` and their runtime dependencies into ``target`` (once)."""
    if (target / _COMPLETE_MARKER).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise UserError("Maven is needed to fetch jars from Maven Central. Install it: apt-get install -y maven")
    report(f"fetching {', '.join(artifacts)} from Maven Central into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="forewarn-mvn-") as work:
        work_dir = Path(work)
        (work_dir / "pom.xml").write_text(_pom(artifacts))
        staging = target.parent / f".{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={staging}"],
            cwd=work_dir,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            if any(hint in output for hint in _UNREACHABLE_HINTS):
                raise UserError(
                    "Maven Central is unreachable, so the jars cannot be fetched. Check network access "
                    "(and proxy settings in ~/.m2/settings.xml), then run 'make setup' again. "
                    f"Maven said: {output.splitlines()[-1] if output else '(nothing)'}"
                )
            raise UserError(f"mvn failed to fetch {artifacts}; its last lines:\n{output[-2000:]}")
        (staging / _COMPLETE_MARKER).write_text("\n".join(artifacts))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def kafka_artifacts(kafka_version: str) -> list[str]:
    return [f"org.apache.kafka:kafka_2.13:{kafka_version}", LOG4J_SLF4J_BINDING]


def spark_kafka_artifacts() -> list[str]:
    # Spark's own resolver (Ivy, spark.jars.packages) ignores Maven's settings; mvn reaches what we need.
    return [f"org.apache.spark:spark-sql-kafka-0-10_2.13:{SPARK_VERSION}"]


def ensure_java() -> None:
    java = shutil.which("java")
    if java is None:
        raise UserError(
            "Java 17+ is needed to run the Kafka broker and Spark. Install it: "
            "apt-get install -y openjdk-17-jre-headless"
        )
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    text = result.stderr + result.stdout
    major = _java_major(text)
    if major is not None and major < 17:
        raise UserError(f"Java 17+ is needed, found Java {major}. Install openjdk-17-jre-headless.")


def _java_major(version_text: str) -> int | None:
    for token in version_text.replace('"', " ").split():
        head = token.split(".")[0]
        if head.isdigit():
            number = int(head)
            return int(token.split(".")[1]) if number == 1 and "." in token else number
    return None


def ensure_redis_server(report: Report) -> str:
    """Path of redis-server, installing Debian's package when it is missing and we may."""
    return ensure_apt_binary("redis-server", "redis-server", report)


def ensure_apt_binary(binary: str, package: str, report: Report) -> str:
    """Path of ``binary``, installing the Debian ``package`` that ships it when it is missing and we may."""
    found = shutil.which(binary)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise UserError(
            f"{binary} is missing. Install it (Debian/Ubuntu: sudo apt-get install -y {package}) "
            "and run 'make setup' again."
        )
    report(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", package]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=900)
        if result.returncode != 0:
            raise UserError(
                f"'{' '.join(argv)}' failed; install {package} by hand and run 'make setup' again.\n"
                + (result.stderr or result.stdout)[-1500:]
            )
    found = shutil.which(binary) or f"/usr/bin/{binary}"
    if not Path(found).exists():
        raise UserError(f"apt-get reported success but {binary} is still missing; install {package} by hand.")
    return found
