"""The real components of the local stack: how each is started and how we know it is ready.

Ready means usable, not merely listening: Kafka answers an admin metadata request, Redis answers PING,
MLflow answers ``/health``, Prometheus answers ``/-/ready`` and scrapes itself and Alertmanager as up
(its scrape and alert paths work), Alertmanager answers ``/-/ready``. MLflow's and the services' targets
are scraped and can be alerted on, but MLflow has its own health and the services come and go, so they are
not part of Prometheus' readiness.
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
from forewarn.stack import monitoring
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

    def env(self) -> dict[str, str]:
        """Environment added to ours for the process."""
        return {}

    def prepare(self) -> None:  # noqa: B027 - optional hook, most components need nothing
        """Create folders and one-time state before the first start."""

    def reload(self) -> None:  # noqa: B027 - optional hook, most components read their config once
        """Apply a regenerated config to the running process (``stack up`` when it is already running)."""

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

    @property
    def secure(self) -> bool:
        return self.opts.profile == "secure"

    def _listeners(self) -> list[str]:
        host, broker, controller = self.opts.host, self.opts.kafka_port, self.opts.kafka_controller_port
        if self.secure:
            from forewarn.stack import secure, secure_kafka

            cert = secure.server_cert(self.settings, self.name)
            return secure_kafka.broker_properties(
                host=host, port=broker, controller_port=controller, keystore=str(cert.bundle),
                truststore=str(secure.local_ca(self.settings).cert),
                admin_password=secure.credentials(self.settings).kafka["admin"])
        return [
            f"listeners=PLAINTEXT://{host}:{broker},CONTROLLER://{host}:{controller}",
            f"advertised.listeners=PLAINTEXT://{host}:{broker}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]

    def _properties(self) -> str:
        host, controller = self.opts.host, self.opts.kafka_controller_port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{controller}",
                *self._listeners(),
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

        from forewarn.stack.secure import _write_private as _write_private_text

        self.data_dir.mkdir(parents=True, exist_ok=True)
        _write_private_text(self.properties_path, self._properties())  # 0600: the secure profile's JAAS lines
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
        # "--cluster-id=" form: a random id may start with "-", which argparse would take for an option.
        command = self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                             "-c", str(self.properties_path))
        argfile = self.data_dir / "format.args"
        if self.secure:
            from forewarn.stack import secure, secure_kafka

            # The bootstrap user's SCRAM credential goes into the first metadata records. Through a java
            # @argfile (0600, deleted at once), so the password is never in an argv that `ps` shows.
            admin_password = secure.credentials(self.settings).kafka["admin"]
            arguments = [*command[1:], "--add-scram", secure_kafka.format_scram_argument(admin_password)]
            _write_private_text(argfile, "\n".join(f'"{argument}"' for argument in arguments))
            command = [command[0], f"@{argfile}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        finally:
            argfile.unlink(missing_ok=True)
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

        from forewarn.kafka.clients import connection_config
        from forewarn.stack.secure_kafka import stack_client_settings

        # log_level 0: "connection refused" while the broker boots is expected, not worth a log line.
        admin = AdminClient({**connection_config(stack_client_settings(self.settings)), "socket.timeout.ms": 2000,
                             "log_level": 0})
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

    @property
    def secure(self) -> bool:
        return self.opts.profile == "secure"

    def _binary(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise UserError("redis-server is missing. Run 'make setup', or: apt-get install -y redis-server")
        return binary

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            from forewarn.stack import secure_redis

            secure_redis.write_acl_file(self.settings, self._binary())

    def reload(self) -> None:
        if self.secure:
            from forewarn.stack import secure_redis

            secure_redis.reload_acl(self.settings, self._binary())

    def argv(self) -> list[str]:
        if self.secure:
            from forewarn.stack import secure_redis

            # TLS on the port, ACL users from a file (forewarn.stack.secure_redis); no plaintext port.
            listen = secure_redis.server_argv(self.settings)
        else:
            listen = ["--port", str(self.port)]
        return [
            self._binary(),
            "--bind", self.opts.host,
            *listen,
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
            if self.secure:
                from forewarn.stack import secure_redis

                with secure_redis.admin_client(self.settings, socket_timeout=1, socket_connect_timeout=1) as client:
                    return bool(client.ping())
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
    def secure(self) -> bool:
        return self.opts.profile == "secure"

    @property
    def address(self) -> str:
        # The secure profile serves HTTPS with basic auth (forewarn.stack.secure_mlflow).
        return f"{'https' if self.secure else 'http'}://{self.opts.host}:{self.port}"

    @property
    def metrics_dir(self) -> Path:
        return self.data_dir / "prometheus-metrics"

    def prepare(self) -> None:
        (self.data_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        # The exporter's multiprocess files describe the workers of one run: a new run starts from none.
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.data_dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.data_dir / "artifacts"),
            "--host", self.opts.host,
            "--port", str(self.port),
            # The default starts several workers (GBs of memory); one is plenty locally.
            "--workers", "1",
            # /metrics (mlflow_http_request_*), scraped by the stack's Prometheus.
            "--expose-prometheus", str(self.metrics_dir),
            *self._secure_argv(),
        ]

    def _secure_argv(self) -> list[str]:
        if not self.secure:
            return []
        from forewarn.stack import secure_mlflow

        return secure_mlflow.server_argv(self.settings)

    def env(self) -> dict[str, str]:
        # The project runs no MLflow jobs (GenAI judges, trace rollups): without this the server starts a
        # pool of huey job consumers beside the tracking server, each a full MLflow import.
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.secure:
            from forewarn.stack import secure_mlflow

            env |= secure_mlflow.server_env(self.settings, self.data_dir)
        return env

    def is_ready(self) -> bool:
        if not self.secure:
            return _http_ok(f"{self.address}/health")
        from forewarn.stack import secure_mlflow

        # Usable means the project's users can log in: /health is open, so it says nothing about auth.
        # They are created on the first ready check (admin's REST calls; idempotent).
        try:
            with secure_mlflow.http_client(self.settings, None) as anonymous:
                if anonymous.get("/health").status_code != 200:
                    return False
            if not secure_mlflow.users_ready(self.settings):
                secure_mlflow.provision(self.settings)
            return secure_mlflow.users_ready(self.settings)
        except httpx.HTTPError:
            return False


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UserError(f"{name} is missing. Run 'make setup', or: apt-get install -y {package}")
    return found


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _write_yaml(path: Path, document: dict[str, object]) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(yaml.safe_dump(document, sort_keys=False))
    partial.replace(path)


class Prometheus(Component):
    name = "prometheus"
    port_setting = "FOREWARN_STACK__PROMETHEUS_PORT"

    @property
    def port(self) -> int:
        return self.opts.prometheus_port

    @property
    def address(self) -> str:
        return f"http://{self.opts.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "prometheus.yml"

    def config(self) -> dict[str, object]:
        return monitoring.prometheus_config(
            host=self.opts.host,
            prometheus_port=self.port,
            alertmanager_port=self.opts.alertmanager_port,
            targets_dir=self.settings.prometheus_targets_dir,
            rules_dir=self.opts.prometheus_rules_dir.resolve(),
            scrape_interval_s=self.opts.scrape_interval_s,
            static_jobs={"mlflow": f"{self.opts.host}:{self.opts.mlflow_port}"},
        )

    def prepare(self) -> None:
        self.settings.prometheus_targets_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        monitoring.remove_stale_targets(self.settings.prometheus_targets_dir)
        _write_yaml(self.config_path, self.config())

    def reload(self) -> None:
        self.prepare()
        try:
            httpx.post(f"{self.address}/-/reload", timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            raise UserError(
                f"Prometheus did not take its regenerated config ({exc}); check the rule files in "
                f"{self.opts.prometheus_rules_dir} with: promtool check rules <file>. Its log: "
                f"{self.tracker.log_file(self.name)}"
            ) from exc

    def argv(self) -> list[str]:
        return [
            _binary("prometheus", "prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir / 'data'}",
            f"--storage.tsdb.retention.time={self.opts.prometheus_retention}",
            f"--web.listen-address={self.opts.host}:{self.port}",
            # POST /-/reload: `stack up` applies new rule files without a restart.
            "--web.enable-lifecycle",
        ]

    def is_ready(self) -> bool:
        if not _http_ok(f"{self.address}/-/ready"):
            return False
        try:
            response = httpx.get(f"{self.address}/api/v1/targets", params={"state": "active"}, timeout=2)
            targets = response.json()["data"]["activeTargets"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        wanted = monitoring.READINESS_JOBS
        health = {t["labels"].get("job"): t.get("health") for t in targets if t["labels"].get("job") in wanted}
        return set(health) == wanted and all(state == "up" for state in health.values())


class Alertmanager(Component):
    name = "alertmanager"
    port_setting = "FOREWARN_STACK__ALERTMANAGER_PORT"

    @property
    def port(self) -> int:
        return self.opts.alertmanager_port

    @property
    def address(self) -> str:
        return f"http://{self.opts.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "alertmanager.yml"

    def config(self) -> dict[str, object]:
        slack = self.opts.alert_slack_webhook_url
        return monitoring.alertmanager_config(
            webhook_url=self.opts.alert_webhook_url,
            slack_webhook_url=slack.get_secret_value() if slack else None,
            slack_channel=self.opts.alert_slack_channel,
        )

    def prepare(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        _write_yaml(self.config_path, self.config())
        self.config_path.chmod(0o600)  # it may hold the Slack webhook URL, a secret

    def reload(self) -> None:
        self.prepare()
        try:
            httpx.post(f"{self.address}/-/reload", timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            raise UserError(f"Alertmanager did not take its regenerated config ({exc}); see "
                            f"{self.tracker.log_file(self.name)}") from exc

    def argv(self) -> list[str]:
        return [
            _binary("prometheus-alertmanager", "prometheus-alertmanager"),
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address={self.opts.host}:{self.port}",
            # One instance: no gossip cluster, so nothing listens on the cluster port (0.0.0.0:9094 by default).
            "--cluster.listen-address=",
        ]

    def is_ready(self) -> bool:
        return _http_ok(f"{self.address}/-/ready")


COMPONENT_TYPES: tuple[type[Component], ...] = (Kafka, Redis, Mlflow, Alertmanager, Prometheus)
