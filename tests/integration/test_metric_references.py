"""Every metric a dashboard panel or a Prometheus rule reads is exported by a running service: the test
starts every service once, scrapes each /metrics, and names the metric and the file of any reference that
no service serves (a renamed metric would otherwise leave a blank panel or an alert that never fires)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from forewarn import topics
from forewarn.localrun import EVERY_SERVICE, LocalPipeline
from forewarn.promql_names import exported_names, metric_names

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
# Series Prometheus makes itself for every target, not read from any /metrics page.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
             "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE"}


def _references() -> tuple[dict[str, set[str]], set[str]]:
    """Metric name -> the files that read it; and the recording rules' names (defined, not exported)."""
    used: dict[str, set[str]] = {}
    recorded: set[str] = set()
    exprs: list[tuple[str, str]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                recorded.update([rule["record"]] if "record" in rule else [])
                exprs.append((path.relative_to(ROOT).as_posix(), rule["expr"]))
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [(path.relative_to(ROOT).as_posix(), t["expr"]) for t in panel.get("targets", [])]
    for where, expr in exprs:
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    return used, recorded


def _scrape_all(pipeline: LocalPipeline, timeout_s: float = 60) -> dict[str, str]:
    pages: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(pages) < len(pipeline.services) and time.monotonic() < deadline:
        for name, process in pipeline.services.items():
            if name in pages:
                continue
            if not process.alive():
                pytest.fail(f"{name} exited:\n{process.tail()}")
            try:
                response = httpx.get(f"{process.url}/metrics", timeout=2)
            except httpx.HTTPError:
                continue
            # A service registers its metrics at wiring time; a page without forewarn_ is not wired yet.
            if response.status_code == 200 and "forewarn_" in response.text:
                pages[name] = response.text
        time.sleep(0.3)
    missing = sorted(set(pipeline.services) - set(pages))
    assert not missing, f"no /metrics page from {missing}: " + "; ".join(pipeline[n].tail(5) for n in missing)
    return pages


def test_every_dashboard_and_rule_metric_is_exported_by_a_service(stack, uid, tmp_path: Path) -> None:
    used, recorded = _references()
    assert len(used) > 20, "the extraction found almost nothing: broken parsing?"
    prefix = f"refs.{uid}."
    stack.ensure_topics([prefix + t for t in topics.ALL], partitions=1)
    env = {
        "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
        "FOREWARN_REDIS__KEY_PREFIX": f"refs-{uid}",
        "FOREWARN_MLFLOW__MODEL_NAME": f"refs-{uid}",  # no champion: the scorer serves /metrics, not ready
        "FOREWARN_FEATURES__APP_ID": f"refs-features-{uid}",
        "FOREWARN_FEATURES__DATADIR": str(tmp_path / "faust"),
        "FOREWARN_SCORER__GROUP_ID": f"refs-scorer-{uid}",
        "FOREWARN_ALERTER__CONSUMER_GROUP": f"refs-alerter-{uid}",
        "FOREWARN_LOG_LEVEL": "WARNING",
    }
    # Target files in a folder of its own: the stack's Prometheus need not scrape these short-lived processes.
    pipeline = LocalPipeline(env=env, log_dir=tmp_path / "logs", targets_dir=tmp_path / "targets")
    try:
        pipeline.start(EVERY_SERVICE, wait=False)
        pages = _scrape_all(pipeline)
    finally:
        pipeline.stop()
        stack.delete_topics([prefix + t for t in topics.ALL])
    exported: set[str] = set()
    for page in pages.values():
        exported |= exported_names(page)
    unknown = {name: sorted(files) for name, files in used.items()
               if name not in exported and name not in recorded and name not in SYNTHETIC}
    assert not unknown, "metrics no service exports: " + "; ".join(
        f"{name} (in {', '.join(files)})" for name, files in sorted(unknown.items()))
