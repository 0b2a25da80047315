"""The stack's Prometheus finds every service the local runner starts (replicas too) through the target
files, scrapes ``forewarn_*`` series from each, and forgets them once they stop."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from forewarn import topics
from forewarn.localrun import EVERY_SERVICE, LocalPipeline
from forewarn.stack import monitoring


def _active_service_targets(prometheus: str, instances: set[str]) -> dict[str, dict]:
    response = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=5)
    response.raise_for_status()
    return {t["labels"]["instance"]: t for t in response.json()["data"]["activeTargets"]
            if t["labels"].get("job") == monitoring.SERVICE_JOB and t["labels"]["instance"] in instances}


def _series_by_instance(prometheus: str, instances: set[str]) -> dict[str, int]:
    selector = "|".join(sorted(instances)).replace(".", "\\\\.")
    query = f'count by (instance) ({{job="{monitoring.SERVICE_JOB}", __name__=~"forewarn_.+", instance=~"{selector}"}})'
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    response.raise_for_status()
    return {r["metric"]["instance"]: int(r["value"][1]) for r in response.json()["data"]["result"]}


def test_every_started_service_is_an_up_target_with_forewarn_series(stack, uid, tmp_path: Path) -> None:
    prometheus = stack.components["prometheus"].address
    targets_dir = stack.settings.prometheus_targets_dir
    prefix = f"prom.{uid}."
    stack.ensure_topics([prefix + t for t in topics.ALL], partitions=2)
    env = {
        "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
        "FOREWARN_REDIS__KEY_PREFIX": f"prom-{uid}",
        "FOREWARN_MLFLOW__MODEL_NAME": f"prom-{uid}",  # no champion: the scorer serves /metrics, not ready
        "FOREWARN_FEATURES__APP_ID": f"prom-features-{uid}",
        "FOREWARN_FEATURES__DATADIR": str(tmp_path / "faust"),
        "FOREWARN_SCORER__GROUP_ID": f"prom-scorer-{uid}",
        "FOREWARN_ALERTER__CONSUMER_GROUP": f"prom-alerter-{uid}",
        "FOREWARN_LOG_LEVEL": "WARNING",
    }
    pipeline = LocalPipeline(env=env, log_dir=tmp_path / "logs", replicas={"features": 2}, targets_dir=targets_dir)
    instances = {f"127.0.0.1:{process.port}": name for name, process in pipeline.services.items()}
    try:
        pipeline.start(EVERY_SERVICE, wait=False)
        files = {p.name for p in targets_dir.glob("*.json")}
        assert {f"{name}-{p.port}.json" for name, p in pipeline.services.items()} <= files
        deadline = time.monotonic() + 90
        up: dict[str, dict] = {}
        series: dict[str, int] = {}
        while time.monotonic() < deadline:
            for name, process in pipeline.services.items():
                if not process.alive():
                    pytest.fail(f"{name} exited:\n{process.tail()}")
            up = {i: t for i, t in _active_service_targets(prometheus, set(instances)).items() if t["health"] == "up"}
            series = _series_by_instance(prometheus, set(instances))
            if set(up) == set(series) == set(instances):
                break
            time.sleep(1)
        assert set(up) == set(instances), f"not up: {sorted(instances[i] for i in set(instances) - set(up))}"
        silent = sorted(instances[i] for i in set(instances) - set(series))
        assert not silent, f"no forewarn_* series from {silent}"
        second = next(t for t in up.values() if t["labels"]["instance_name"] == "features-2")
        assert second["labels"]["service"] == "features" and second["labels"]["replica"] == "2"
    finally:
        pipeline.stop()
        stack.delete_topics([prefix + t for t in topics.ALL])
    assert not {f"{name}-{p.port}.json" for name, p in pipeline.services.items()} & {
        p.name for p in targets_dir.glob("*.json")
    }
    deadline = time.monotonic() + 30
    while _active_service_targets(prometheus, set(instances)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _active_service_targets(prometheus, set(instances)) == {}, "Prometheus still scrapes stopped services"
