"""The local Prometheus and Alertmanager: generated configs, target files, and how they are started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forewarn.localrun import LocalPipeline, ServiceProcess
from forewarn.stack import monitoring
from forewarn.stack.components import Alertmanager, Mlflow, Prometheus
from forewarn.stack.config import StackOptions, StackSettings
from forewarn.stack.process import ProcessTracker


def _config(tmp_path: Path, **extra: object) -> dict[str, object]:
    return monitoring.prometheus_config(host="127.0.0.1", prometheus_port=19090, alertmanager_port=19094,
                                        targets_dir=tmp_path / "targets", rules_dir=tmp_path / "rules",
                                        scrape_interval_s=5, **extra)  # type: ignore[arg-type]


def test_prometheus_scrapes_itself_alertmanager_and_the_services_from_files(tmp_path: Path) -> None:
    config = _config(tmp_path, static_jobs={"mlflow": "127.0.0.1:15000"})
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}  # type: ignore[attr-defined]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:19090"]}]
    assert jobs["alertmanager"]["static_configs"] == [{"targets": ["127.0.0.1:19094"]}]
    assert jobs["mlflow"]["static_configs"] == [{"targets": ["127.0.0.1:15000"]}]
    assert jobs["forewarn"]["file_sd_configs"] == [
        {"files": [str(tmp_path / "targets" / "*.json")], "refresh_interval": "5s"}
    ]
    assert set(jobs) == {"prometheus", "alertmanager", "mlflow", "forewarn"}
    assert monitoring.READINESS_JOBS < set(jobs)
    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s", "scrape_timeout": "5s"}
    assert config["rule_files"] == [str(tmp_path / "rules" / "*.yml")]
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:19094"]}]}]}


def test_alertmanager_drops_alerts_until_a_receiver_is_configured() -> None:
    config = monitoring.alertmanager_config(webhook_url=None, slack_webhook_url=None, slack_channel="#x")
    assert config["receivers"] == [{"name": "null"}]
    assert config["route"]["receiver"] == "null"  # type: ignore[index]


def test_alertmanager_routes_to_the_webhook_and_slack_when_set() -> None:
    config = monitoring.alertmanager_config(webhook_url="http://127.0.0.1:9/hook",
                                            slack_webhook_url="https://hooks.slack.test/T/B/x", slack_channel="#oncall")
    (receiver,) = config["receivers"]  # type: ignore[misc]
    assert config["route"]["receiver"] == receiver["name"] == "forewarn"  # type: ignore[index]
    assert receiver["webhook_configs"] == [{"url": "http://127.0.0.1:9/hook", "send_resolved": True}]
    (slack,) = receiver["slack_configs"]
    assert slack["api_url"] == "https://hooks.slack.test/T/B/x" and slack["channel"] == "#oncall"


def test_target_file_names_the_service_replica_and_port_and_goes_away(tmp_path: Path) -> None:
    path = monitoring.write_target(tmp_path, name="features-2", service="features", port=9123, pid=os.getpid())
    assert path.name == "features-2-9123.json"
    (group,) = json.loads(path.read_text())
    assert group["targets"] == ["127.0.0.1:9123"]
    assert group["labels"] == {"service": "features", "replica": "2", "instance_name": "features-2",
                               monitoring.PID_LABEL: str(os.getpid())}
    assert not list(tmp_path.glob(".*"))  # no partial file left behind
    first = monitoring.target_entry(name="scorer", service="scorer", port=1, pid=1)
    assert first[0]["labels"]["replica"] == "1"  # type: ignore[index]
    monitoring.remove_target(tmp_path, "features-2", 9123)
    assert list(tmp_path.iterdir()) == []
    monitoring.remove_target(tmp_path, "features-2", 9123)  # already gone is fine


def test_stale_target_files_are_removed_live_ones_kept(tmp_path: Path) -> None:
    live = monitoring.write_target(tmp_path, name="ingest", service="ingest", port=1, pid=os.getpid())
    dead = monitoring.write_target(tmp_path, name="scorer", service="scorer", port=2, pid=2**22 + 12345)
    garbage = tmp_path / "broken.json"
    garbage.write_text("not json")
    assert sorted(monitoring.remove_stale_targets(tmp_path)) == sorted([dead, garbage])
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


def test_local_pipeline_gives_every_process_the_targets_folder(tmp_path: Path) -> None:
    pipeline = LocalPipeline(env={}, log_dir=tmp_path / "logs", replicas={"features": 2},
                             targets_dir=tmp_path / "targets")
    assert {process.targets_dir for process in pipeline.services.values()} == {tmp_path / "targets"}
    default = LocalPipeline(env={}, log_dir=tmp_path / "logs")
    assert default.targets_dir == StackSettings().prometheus_targets_dir


def test_stopping_a_service_removes_its_target_even_when_it_already_died(tmp_path: Path) -> None:
    process = ServiceProcess("scorer", {}, 9555, tmp_path / "scorer.log", service="scorer", targets_dir=tmp_path)
    monitoring.write_target(tmp_path, name="scorer", service="scorer", port=9555, pid=os.getpid())
    process.stop()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(stack=StackOptions(state_dir=tmp_path / "state", prometheus_port=29090,
                                            alertmanager_port=29094, prometheus_rules_dir=tmp_path / "rules",
                                            alert_webhook_url="http://127.0.0.1:9/hook"))


def test_prometheus_and_alertmanager_bind_loopback_with_state_under_the_state_folder(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    tracker = ProcessTracker(settings.state_dir)
    prometheus, alertmanager = Prometheus(settings, tracker), Alertmanager(settings, tracker)
    state = settings.state_dir
    assert prometheus.argv() == [
        "/usr/bin/prometheus", f"--config.file={state / 'prometheus' / 'prometheus.yml'}",
        f"--storage.tsdb.path={state / 'prometheus' / 'data'}", "--storage.tsdb.retention.time=3d",
        "--web.listen-address=127.0.0.1:29090", "--web.enable-lifecycle",
    ]
    assert alertmanager.argv() == [
        "/usr/bin/prometheus-alertmanager", f"--config.file={state / 'alertmanager' / 'alertmanager.yml'}",
        f"--storage.path={state / 'alertmanager' / 'data'}", "--web.listen-address=127.0.0.1:29094",
        "--cluster.listen-address=",
    ]
    assert prometheus.ports == {29090: "FOREWARN_STACK__PROMETHEUS_PORT"}
    assert alertmanager.ports == {29094: "FOREWARN_STACK__ALERTMANAGER_PORT"}
    assert prometheus.config()["rule_files"] == [str(settings.stack.prometheus_rules_dir / "*.yml")]
    receivers = alertmanager.config()["receivers"]
    assert receivers[0]["webhook_configs"][0]["url"] == "http://127.0.0.1:9/hook"  # type: ignore[index]


def test_mlflow_runs_without_its_job_consumers_and_serves_metrics(settings: StackSettings) -> None:
    mlflow = Mlflow(settings, ProcessTracker(settings.state_dir))
    assert mlflow.env() == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    argv = mlflow.argv()
    assert argv[argv.index("--expose-prometheus") + 1] == str(settings.state_dir / "mlflow" / "prometheus-metrics")
    jobs = {job["job_name"]: job for job in Prometheus(settings, ProcessTracker(settings.state_dir)).config()[
        "scrape_configs"]}  # type: ignore[attr-defined]
    assert jobs["mlflow"]["static_configs"] == [{"targets": [f"127.0.0.1:{settings.stack.mlflow_port}"]}]
