"""A throwaway stack on free ports: start, status, stop, and the errors a user meets on a bad machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from forewarn.errors import UserError
from forewarn.stack.config import StackOptions, StackSettings
from forewarn.stack.manager import LocalStack
from forewarn.stack.process import free_port


def _throwaway(tmp_path: Path, **ports: int) -> LocalStack:
    options = {
        "state_dir": tmp_path / "state",
        "kafka_port": free_port(),
        "kafka_controller_port": free_port(),
        "redis_port": free_port(),
        "mlflow_port": free_port(),
        "prometheus_port": free_port(),
        "alertmanager_port": free_port(),
        **ports,
    }
    settings = StackSettings(stack=StackOptions(**options))
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{options['kafka_port']}"}
            )
        }
    )
    return LocalStack(settings)


def test_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    stack = _throwaway(tmp_path)
    try:
        state = stack.up()
        assert all(item.healthy for item in state.values()), state
        pids = [item.pid for item in state.values()]
        assert all(isinstance(pid, int) for pid in pids)
        assert _mlflow_scraped(state["prometheus"].address), "Prometheus does not scrape MLflow's /metrics"
    finally:
        stopped = stack.down()
    assert sorted(stopped) == ["alertmanager", "kafka", "mlflow", "prometheus", "redis"]
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not any(item.healthy for item in stack.status().values())
    assert stack.down() == []


def _mlflow_scraped(prometheus: str, timeout_s: float = 20.0) -> bool:
    """True once Prometheus has MLflow's target up with ``mlflow_*`` series (first scrape within 5 s)."""
    import httpx

    query = 'count({job="mlflow", __name__=~"mlflow_.+"}) and on() up{job="mlflow"} == 1'
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5).json()
        if result["data"]["result"]:
            return True
        time.sleep(1)
    return False


def test_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        stack = _throwaway(tmp_path, redis_port=port)
        try:
            with pytest.raises(UserError) as info:
                stack.up()
        finally:
            stack.down()
    assert f"port {port} (redis)" in str(info.value)
    assert "FOREWARN_STACK__REDIS_PORT" in str(info.value)


def _forewarn(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forewarn.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_missing_java_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    result = _forewarn(["stack", "install"], env)
    assert result.returncode == 2
    assert "Java 17+ is needed" in result.stderr
    assert "apt-get install" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_maven_central_is_a_clear_message(tmp_path: Path) -> None:
    # A mirror on a closed loopback port stands in for a network without Maven Central.
    m2 = tmp_path / "home" / ".m2"
    m2.mkdir(parents=True)
    (m2 / "settings.xml").write_text(
        "<settings><localRepository>" + str(tmp_path / "repo") + "</localRepository><mirrors><mirror>"
        "<id>offline</id><mirrorOf>*</mirrorOf><url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    env = {
        **os.environ,
        "MAVEN_OPTS": f"-Duser.home={tmp_path / 'home'}",
        "FOREWARN_STACK__CACHE_DIR": str(tmp_path / "cache"),
    }
    result = _forewarn(["stack", "install"], env)
    assert result.returncode == 2, result.stderr
    assert "Maven Central is unreachable" in result.stderr
    assert "Traceback" not in result.stderr
