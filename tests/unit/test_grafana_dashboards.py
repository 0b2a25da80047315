"""The committed Grafana dashboard is what src/forewarn/dashboards.py builds (one source of truth), and it
is wired to the datasource the provisioning declares."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from forewarn import dashboards

ROOT = Path(__file__).resolve().parents[2]


def test_committed_dashboard_equals_the_generated_one() -> None:
    committed = dashboards.DASHBOARD_FILE.read_text()
    assert committed == dashboards.render(), "run `python -m forewarn.dashboards` and commit the JSON"


def test_every_target_uses_the_provisioned_datasource_and_ids_are_unique() -> None:
    provisioned = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    for path in (ROOT / "deploy/grafana/dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        targets = [t for panel in board["panels"] for t in panel.get("targets", [])]
        assert targets, path.name
        assert {t["datasource"]["uid"] for t in targets} <= uids, path.name
        assert all(t["expr"].strip() for t in targets)


def test_the_dashboard_covers_what_on_call_needs() -> None:
    keys = set(dashboards.panels())
    assert {"throughput", "lag", "latency", "alerts", "notifier_success", "model_version", "drift"} <= keys
