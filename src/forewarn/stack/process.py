"""Background processes that ``forewarn stack`` owns, tracked by PID files.

``down`` must stop only what ``up`` started: a PID file records the PID and the process start time, and
a PID whose start time differs (the PID was reused) is treated as gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    log_path: str


class ProcessTracker:
    """PID files under ``<state>/run``; logs under ``<state>/logs``."""

    def __init__(self, state_dir: Path) -> None:
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> ProcessRecord:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file(name)
        with log_path.open("ab") as log:
            # A new session detaches the child from our terminal, so Ctrl-C on a later command or the end
            # of `forewarn stack up` leaves it running; `down` signals the whole group.
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        record = ProcessRecord(name, proc.pid, psutil.Process(proc.pid).create_time(), str(log_path))
        self.pid_file(name).write_text(json.dumps(record.__dict__))
        return record

    def record(self, name: str) -> ProcessRecord | None:
        """The record of a running process we started, or None (and a stale PID file is removed)."""
        path = self.pid_file(name)
        try:
            record = ProcessRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not _is_same_process(record):
            path.unlink(missing_ok=True)
            return None
        return record

    def stop(self, name: str, timeout_s: float = 30.0) -> bool:
        """Stop the process group we started; True when something was stopped."""
        record = self.record(name)
        if record is None:
            return False
        _signal_group(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _is_same_process(record):
            time.sleep(0.2)
        if _is_same_process(record):
            _signal_group(record.pid, signal.SIGKILL)
            _wait_gone(record, 10.0)
        self.pid_file(name).unlink(missing_ok=True)
        return True

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _is_same_process(record: ProcessRecord) -> bool:
    try:
        proc = psutil.Process(record.pid)
        return abs(proc.create_time() - record.create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _wait_gone(record: ProcessRecord, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _is_same_process(record):
        time.sleep(0.1)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tree_rss_bytes(pid: int) -> int | None:
    """Resident memory of a process and all its descendants (MLflow runs children of its own), summed:
    pages they share count once per process, so this is an upper bound."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total
