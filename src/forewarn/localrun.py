"""Run the four services as local processes: for ``forewarn demo``, the end-to-end tests and benchmarks.

Each service is ``python -m forewarn.cli run <name>`` with its settings in the environment, its output in
a log file, and a port of its own; readiness is its ``/readyz``. Processes are started in their own
session so a kill reaches the whole service, as a container runtime would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from forewarn.errors import UserError
from forewarn.stack.process import free_port

SERVICES = ("features", "scorer", "alerter", "ingest")


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forewarn.cli", "run", self.name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
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
    """The four services with one shared environment (topic prefix, Redis prefix, model name...)."""

    env: dict[str, str]
    log_dir: Path
    ports: dict[str, int] = field(default_factory=dict)  # fixed ports wanted; others get a free one
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SERVICES:
            port = self.ports.get(name) or free_port()
            env = {**os.environ, **self.env, f"FOREWARN_{name.upper()}__PORT": str(port),
                   f"FOREWARN_{name.upper()}__HOST": "127.0.0.1"}
            self.services[name] = ServiceProcess(name, env, port, self.log_dir / f"{name}.log")

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self, names: tuple[str, ...] = SERVICES, wait: bool = True,
              skip_wait: tuple[str, ...] = ()) -> dict[str, float]:
        for name in names:
            self.services[name].start()
        if not wait:
            return {}
        return {name: self.services[name].wait_ready() for name in names if name not in skip_wait}

    def stop(self) -> None:
        for name in reversed(SERVICES):
            self.services[name].stop()
