"""The three real components of the local stack: how each is started and how we know it is ready.

Ready means usable, not merely listening: Kafka answers an admin metadata request, Redis answers PING,
MLflow answers ``/health``.
"""

from __future__ import annotations

import base64
import shutil
import sys
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

import httpx

from forewarn.errors import UserError
from forewarn.stack.config import StackSettings
from forewarn.stack.process import ProcessTracker


class Component(ABC):
    name: str
    port_setting: str

    def __init__(self, settings: StackSettings, tracker: ProcessTracker) -> None:
        self.settings = settings
        self.tracker = tracker
        self.opts = settings.stack

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def address(self) -> str:
        return f"{self.opts.host}:{self.port}"

    @property
    def ports(self) -> dict[int, str]:
        """Every port this component binds, with the setting that moves it."""
        return {self.port: self.port_setting}

    @abstractmethod
    def argv(self) -> list[str]: ...

    def prepare(self) -> None:  # noqa: B027 - optional hook, most components need nothing
        """Create folders and one-time state before the first start."""

    @abstractmethod
    def is_ready(self) -> bool: ...

    @property
    def data_dir(self) -> Path:
        return self.settings.state_dir / self.name


class Kafka(Component):
    name = "kafka"
    port_setting = "FOREWARN_STACK__KAFKA_PORT"

    @property
    def port(self) -> int:
        return self.opts.kafka_port

    @property
    def ports(self) -> dict[int, str]:
        return {
            self.opts.kafka_port: self.port_setting,
            self.opts.kafka_controller_port: "FOREWARN_STACK__KAFKA_CONTROLLER_PORT",
        }

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    def _properties(self) -> str:
        host, broker, controller = self.opts.host, self.opts.kafka_port, self.opts.kafka_controller_port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{controller}",
                f"listeners=PLAINTEXT://{host}:{broker},CONTROLLER://{host}:{controller}",
                f"advertised.listeners=PLAINTEXT://{host}:{broker}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir / 'logs'}",
                f"num.partitions={self.settings.kafka.topic_partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                # Tests create many short-lived consumer groups: no reason to wait 3 s per join.
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=168",
                "",
            ]
        )

    def _classpath(self) -> str:
        libs = self.settings.kafka_libs_dir
        if not (libs / ".complete").exists():
            raise UserError(f"Kafka jars are not in {libs}. Run 'make setup' (or 'forewarn stack install').")
        return f"{libs}/*"

    def _java(self, main: str, *args: str, log_config: bool = True) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise UserError("Java 17+ is needed for Kafka. Install it: apt-get install -y openjdk-17-jre-headless")
        flags = [f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"] if log_config else []
        return [java, *flags, "-cp", self._classpath(), main, *args]

    def prepare(self) -> None:
        import subprocess

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(self._properties())
        (self.data_dir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.console.type = Console\nappender.console.name = STDOUT\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
            "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
        )
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            # "--cluster-id=" form: a random id may start with "-", which argparse would take for an option.
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                       "-c", str(self.properties_path)),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise UserError(f"formatting Kafka storage failed:\n{(result.stdout + result.stderr)[-1500:]}")

    def argv(self) -> list[str]:
        heap = self.opts.kafka_heap
        java = self._java("kafka.Kafka", str(self.properties_path))
        # The GC log answers "is the broker's heap growing, and did it pause?" after a long run.
        gc_log = f"-Xlog:gc:file={self.data_dir / 'gc.log'}:time,uptime:filecount=2,filesize=20M"
        # AlwaysPreTouch: the heap is a fixed reservation (-Xms = -Xmx), so take all of it at start instead
        # of page by page as G1 first uses each region; the broker's memory is then flat from the first
        # second, and no request pays for a page fault.
        return [java[0], f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:+AlwaysPreTouch", gc_log, *java[1:]]

    def is_ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        # log_level 0: "connection refused" while the broker boots is expected, not worth a log line.
        admin = AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": 2000, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
        return bool(metadata.brokers)


class Redis(Component):
    name = "redis"
    port_setting = "FOREWARN_STACK__REDIS_PORT"

    @property
    def port(self) -> int:
        return self.opts.redis_port

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise UserError("redis-server is missing. Run 'make setup', or: apt-get install -y redis-server")
        return [
            binary,
            "--bind", self.opts.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--protected-mode", "yes",
            # The online store can be rebuilt from Kafka; the append-only file makes restarts cheap.
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
        ]

    def is_ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host=self.opts.host, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


class Mlflow(Component):
    name = "mlflow"
    port_setting = "FOREWARN_STACK__MLFLOW_PORT"

    @property
    def port(self) -> int:
        return self.opts.mlflow_port

    @property
    def address(self) -> str:
        return f"http://{self.opts.host}:{self.port}"

    def prepare(self) -> None:
        (self.data_dir / "artifacts").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.data_dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.data_dir / "artifacts"),
            "--host", self.opts.host,
            "--port", str(self.port),
            # The default starts several workers (GBs of memory); one is plenty locally.
            "--workers", "1",
        ]

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.address}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


COMPONENT_TYPES: tuple[type[Component], ...] = (Kafka, Redis, Mlflow)
