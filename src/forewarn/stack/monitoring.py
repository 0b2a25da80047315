"""What the local Prometheus and Alertmanager are told: their generated configs and the target files.

Prometheus finds the Forewarn processes through file-based service discovery: the local runner
(:mod:`forewarn.localrun`) writes one JSON file per running process into the targets folder and removes it
when the process stops, so replicas appear and disappear without a config change. The stack's own
components with a metrics endpoint are static jobs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil

SERVICE_JOB = "forewarn"  # the job every Forewarn service is scraped under; the ``service`` label tells them apart
TARGET_GLOB = "*.json"
# A file_sd label starting with __meta_ is seen by relabelling and then dropped: the PID tells which file is
# stale without becoming a label of every series.
PID_LABEL = "__meta_forewarn_pid"
# The jobs that must be up for Prometheus to count as ready: its own scrape and its path to Alertmanager.
READINESS_JOBS = frozenset({"prometheus", "alertmanager"})


def prometheus_config(*, host: str, prometheus_port: int, alertmanager_port: int, targets_dir: Path,
                      rules_dir: Path, scrape_interval_s: int,
                      static_jobs: dict[str, str] | None = None) -> dict[str, object]:
    """The prometheus.yml of the local stack. ``static_jobs``: job name -> host:port of further stack
    components that serve /metrics."""
    interval = f"{scrape_interval_s}s"
    jobs: dict[str, str] = {
        "prometheus": f"{host}:{prometheus_port}",
        "alertmanager": f"{host}:{alertmanager_port}",
        **(static_jobs or {}),
    }
    scrape_configs: list[dict[str, object]] = [
        {"job_name": job, "static_configs": [{"targets": [address]}]} for job, address in jobs.items()
    ]
    scrape_configs.append({
        "job_name": SERVICE_JOB,
        "file_sd_configs": [{"files": [str(targets_dir / TARGET_GLOB)], "refresh_interval": interval}],
    })
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        # A glob: the rules folder may be empty or missing, and a new file needs no config change.
        "rule_files": [str(rules_dir / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{host}:{alertmanager_port}"]}]}]},
        "scrape_configs": scrape_configs,
    }


def alertmanager_config(*, webhook_url: str | None, slack_webhook_url: str | None,
                        slack_channel: str) -> dict[str, object]:
    """Route every alert to one receiver: the webhook and/or Slack when set, else nowhere (``null``)."""
    receiver: dict[str, object] = {"name": "null"}
    if webhook_url or slack_webhook_url:
        receiver = {"name": "forewarn"}
        if webhook_url:
            receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
        if slack_webhook_url:
            receiver["slack_configs"] = [{
                "api_url": slack_webhook_url,
                "channel": slack_channel,
                "send_resolved": True,
                "title": '{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}',
                "text": '{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.runbook }}\n{{ end }}',
            }]
    return {
        "route": {
            "receiver": receiver["name"],
            "group_by": ["alertname", "service"],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": [receiver],
    }


def target_entry(*, name: str, service: str, port: int, pid: int, host: str = "127.0.0.1") -> list[dict[str, object]]:
    """One file_sd target group: the process ``name`` (``features-2``) of ``service`` on ``port``."""
    replica = name.removeprefix(service).removeprefix("-") or "1"
    return [{
        "targets": [f"{host}:{port}"],
        "labels": {"service": service, "replica": replica, "instance_name": name, PID_LABEL: str(pid)},
    }]


def target_file(targets_dir: Path, name: str, port: int) -> Path:
    return targets_dir / f"{name}-{port}.json"


def write_target(targets_dir: Path, *, name: str, service: str, port: int, pid: int) -> Path:
    """Write the target file atomically: Prometheus watches the folder and must never read half a file."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    path = target_file(targets_dir, name, port)
    partial = path.with_name(f".{path.name}.partial")  # does not match the *.json glob
    partial.write_text(json.dumps(target_entry(name=name, service=service, port=port, pid=pid)))
    os.replace(partial, path)
    return path


def remove_target(targets_dir: Path, name: str, port: int) -> None:
    target_file(targets_dir, name, port).unlink(missing_ok=True)


def remove_stale_targets(targets_dir: Path) -> list[Path]:
    """Delete the target files of processes that are gone (a runner killed before it could clean up)."""
    removed = []
    for path in sorted(targets_dir.glob(TARGET_GLOB)):
        try:
            pid = int(json.loads(path.read_text())[0]["labels"][PID_LABEL])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pid = -1
        if pid <= 0 or not psutil.pid_exists(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
