"""Run the services as local processes: for ``forewarn demo``, the end-to-end tests and benchmarks.

Each service is ``python -m forewarn.cli run <name>`` with its settings in the environment, its output in
a log file, and a port of its own; readiness is its ``/readyz``. Processes are started in their own
session so a kill reaches the whole service, as a container runtime would. While a process runs, a target
file in the stack's Prometheus targets folder names its port, so the local Prometheus scrapes it.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from forewarn.errors import UserError
from forewarn.settings import TlsSettings
from forewarn.stack import monitoring
from forewarn.stack.process import free_port

SERVICES = ("features", "scorer", "alerter", "ingest")  # the stream: started unless told otherwise
MONITORING = ("monitor",)  # started when asked (the demo, the drift benchmark and tests)
EVERY_SERVICE = (*SERVICES, *MONITORING)


@dataclass
class ServiceProcess:
    name: str  # this instance: "features", or "features-2" for a second replica
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    service: str = ""  # the service it runs; its name when empty
    targets_dir: Path | None = None  # Prometheus file discovery: a target file while it runs; None: none

    @property
    def url(self) -> str:
        # The secure profile's services serve HTTPS (FOREWARN_TLS__*, forewarn.stack.secure.client_env).
        scheme = "https" if self.env.get("FOREWARN_TLS__HTTP_CERT_FILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def verify(self) -> ssl.SSLContext | bool:
        """What a client of this service verifies its certificate against (the env's CA when given)."""
        ca_file = self.env.get("FOREWARN_TLS__CA_FILE")
        return TlsSettings(ca_file=ca_file).client_context() if ca_file else True

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forewarn.cli", "run", self.service or self.name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        if self.targets_dir is not None:
            monitoring.write_target(self.targets_dir, name=self.name, service=self.service or self.name,
                                    port=self.port, pid=self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0, verify=self.verify()).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 90.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                raise UserError(f"{self.name} exited during start-up; last lines of {self.log_path}:\n{self.tail()}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.2)
        raise UserError(f"{self.name} not ready after {timeout_s:.0f}s; last lines of {self.log_path}:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        if self.targets_dir is not None:
            monitoring.remove_target(self.targets_dir, self.name, self.port)
        if not self.alive():
            return
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def grep(self, pattern: str, lines: int = 20) -> str:
        """The last ``lines`` log lines matching the regular expression ``pattern``."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        found = [line for line in text.splitlines() if re.search(pattern, line)]
        return "\n".join(found[-lines:]) or "(none)"


@dataclass
class LocalPipeline:
    """The four services with one shared environment (topic prefix, Redis prefix, model name...).

    ``replicas`` runs more than one process of a service, as a Deployment's replicas would: the copies share
    the consumer group and split the partitions. They are named ``features``, ``features-2``, ...
    """

    env: dict[str, str]
    log_dir: Path
    ports: dict[str, int] = field(default_factory=dict)  # fixed ports wanted; others get a free one
    replicas: dict[str, int] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # Where the local stack's Prometheus discovers targets; by default the stack's own (its settings).
    targets_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.targets_dir is None:
            from forewarn.stack.config import StackSettings

            self.targets_dir = StackSettings().prometheus_targets_dir
        for service in EVERY_SERVICE:
            for name in self.instances(service):
                port = self.ports.get(name) or free_port()
                env = {**os.environ, **self.env, f"FOREWARN_{service.upper()}__PORT": str(port),
                       f"FOREWARN_{service.upper()}__HOST": "127.0.0.1"}
                if name != service and service == "features":
                    # faust keeps a folder per worker; two workers must not share one
                    base = env.get("FOREWARN_FEATURES__DATADIR", ".forewarn/faust")
                    env["FOREWARN_FEATURES__DATADIR"] = f"{base}-{name}"
                self.services[name] = ServiceProcess(name, env, port, self.log_dir / f"{name}.log", service=service,
                                                     targets_dir=self.targets_dir)

    def instances(self, service: str) -> list[str]:
        """The process names of a service: its own name, then ``<name>-2``, ... for its replicas."""
        return [service] + [f"{service}-{k}" for k in range(2, self.replicas.get(service, 1) + 1)]

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self, names: tuple[str, ...] = SERVICES, wait: bool = True,
              skip_wait: tuple[str, ...] = ()) -> dict[str, float]:
        """Start services (every replica of each); ready times by process name."""
        started = [name for service in names for name in self.instances(service)]
        for name in started:
            self.services[name].start()
        if not wait:
            return {}
        return {name: self.services[name].wait_ready() for name in started
                if self.services[name].service not in skip_wait}

    def stop(self) -> None:
        for service in reversed(EVERY_SERVICE):
            for name in reversed(self.instances(service)):
                self.services[name].stop()
