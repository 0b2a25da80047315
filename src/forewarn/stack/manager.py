"""``forewarn stack up | down | status``: the local Kafka, Redis and MLflow as background processes.

The pytest session fixture calls the same :class:`LocalStack`, so tests run against exactly what users
run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from forewarn import topics
from forewarn.errors import UserError
from forewarn.stack.components import COMPONENT_TYPES, Component
from forewarn.stack.config import StackSettings
from forewarn.stack.install import (
    ensure_apt_binary,
    ensure_java,
    ensure_redis_server,
    fetch_maven_jars,
    kafka_artifacts,
    spark_kafka_artifacts,
)
from forewarn.stack.process import ProcessTracker, port_in_use, tree_rss_bytes

Report = Callable[[str], None]


@dataclass(frozen=True)
class ComponentStatus:
    healthy: bool
    address: str
    pid: int | None
    log: str
    rss_mb: float | None = None  # resident memory of the process and its children


class LocalStack:
    def __init__(self, settings: StackSettings | None = None, report: Report = lambda _msg: None,
                 only: Iterable[str] | None = None) -> None:
        """``only``: the components to manage (default: all), e.g. a second stack for tests."""
        self.settings = settings or StackSettings()
        self.report = report
        self.tracker = ProcessTracker(self.settings.state_dir)
        wanted = set(only) if only is not None else None
        self.components: dict[str, Component] = {
            cls.name: cls(self.settings, self.tracker) for cls in COMPONENT_TYPES
            if wanted is None or cls.name in wanted
        }

    def install(self) -> None:
        ensure_java()
        fetch_maven_jars(
            kafka_artifacts(self.settings.stack.kafka_version), self.settings.kafka_libs_dir, self.report
        )
        fetch_maven_jars(spark_kafka_artifacts(), self.settings.spark_kafka_libs_dir, self.report)
        ensure_redis_server(self.report)
        ensure_apt_binary("prometheus", "prometheus", self.report)
        ensure_apt_binary("prometheus-alertmanager", "prometheus-alertmanager", self.report)

    def up(self) -> dict[str, ComponentStatus]:
        """Start what is not running, wait until everything is ready, create the topics. Idempotent."""
        started: list[Component] = []
        for component in self.components.values():
            if self.tracker.record(component.name) is not None:
                component.reload()
                self.report(f"{component.name}: already running")
                continue
            self._check_ports_free(component)
            component.prepare()
            record = self.tracker.start(component.name, component.argv(), cwd=self.settings.state_dir,
                                        env=component.env())
            self.report(f"{component.name}: started (pid {record.pid}), log {record.log_path}")
            started.append(component)
        with ThreadPoolExecutor(len(self.components)) as pool:
            list(pool.map(self._wait_ready, self.components.values()))
        if self.settings.stack.profile == "secure" and "kafka" in self.components:
            self._secure_kafka_access()
        self.ensure_topics([topics.AUDIT], config=topics.AUDIT_CONFIG)  # first: audit records are kept forever
        self.ensure_topics(topics.ALL)
        return self.status()

    def down(self) -> list[str]:
        """Stop only the processes ``up`` started (by PID file); returns the names stopped."""
        stopped: list[str] = []
        # Kafka last: it takes longest to shut down cleanly.
        for name in ("prometheus", "alertmanager", "mlflow", "redis", "kafka"):
            if name in self.components and self.tracker.stop(name):
                stopped.append(name)
                self.report(f"{name}: stopped")
        return stopped

    def status(self) -> dict[str, ComponentStatus]:
        result = {}
        for name, component in self.components.items():
            record = self.tracker.record(name)
            rss = tree_rss_bytes(record.pid) if record else None
            result[name] = ComponentStatus(
                healthy=record is not None and component.is_ready(),
                address=component.address,
                pid=record.pid if record else None,
                log=str(self.tracker.log_file(name)),
                rss_mb=round(rss / 2**20, 1) if rss is not None else None,
            )
        return result

    def status_json(self) -> dict[str, dict[str, object]]:
        return {name: asdict(state) for name, state in self.status().items()}

    def kafka_admin(self) -> Any:
        """An AdminClient of the stack's broker: plain text, or as ``admin`` on the secure profile."""
        from forewarn import kafka
        from forewarn.stack.secure_kafka import stack_client_settings

        return kafka.admin(stack_client_settings(self.settings))

    def _secure_kafka_access(self) -> None:
        """Every service's SCRAM user and the ACL table (both idempotent: run on every ``up``)."""
        from forewarn.stack import secure, secure_kafka

        admin = self.kafka_admin()
        secure_kafka.ensure_users(admin, secure.credentials(self.settings).kafka)
        secure_kafka.ensure_acls(admin, self.settings.kafka.topic_prefix)
        self.report("kafka: SCRAM users and ACLs in place")

    def ensure_topics(self, names: Iterable[str], partitions: int | None = None,
                      config: dict[str, str] | None = None) -> None:
        """Create the topics that do not exist yet (``config``: topic-level settings for those)."""
        from confluent_kafka.admin import NewTopic

        kafka = self.settings.kafka
        admin = self.kafka_admin()
        existing = set(admin.list_topics(timeout=10).topics)
        wanted = [
            NewTopic(kafka.topic(name), num_partitions=partitions or kafka.topic_partitions,
                     replication_factor=kafka.replication_factor, config=dict(config or {}))
            for name in names
            if kafka.topic(name) not in existing
        ]
        if not wanted:
            return
        for name, future in admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise UserError(f"could not create topic {name}: {exc}") from exc
        self.report(f"topics ready: {', '.join(t.topic for t in wanted)}")

    def delete_topics(self, names: Iterable[str]) -> None:
        """Delete topics (the settings' prefix added as in ensure_topics); missing ones are ignored."""
        kafka = self.settings.kafka
        admin = self.kafka_admin()
        for name, future in admin.delete_topics([kafka.topic(n) for n in names], operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - already gone is fine
                if "UNKNOWN_TOPIC" not in str(exc):
                    self.report(f"could not delete topic {name}: {exc}")

    def _check_ports_free(self, component: Component) -> None:
        for port, setting in component.ports.items():
            if port_in_use(self.settings.stack.host, port):
                raise UserError(
                    f"port {port} ({component.name}) is already in use by a process this stack did not "
                    f"start. Stop that process, or choose another port: export {setting}=<free port>"
                )

    def _wait_ready(self, component: Component) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            if component.is_ready():
                self.report(f"{component.name}: ready at {component.address} in {time.monotonic() - started:.1f}s")
                return
            if self.tracker.record(component.name) is None:
                raise UserError(
                    f"{component.name} exited during start-up. Last lines of "
                    f"{self.tracker.log_file(component.name)}:\n{self.tracker.log_tail(component.name)}"
                )
            time.sleep(0.3)
        raise UserError(
            f"{component.name} did not become ready within {self.settings.stack.start_timeout_s:.0f}s "
            f"(raise FOREWARN_STACK__START_TIMEOUT_S if the machine is slow). Last lines of its log:\n"
            f"{self.tracker.log_tail(component.name)}"
        )
