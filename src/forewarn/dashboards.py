"""The Grafana dashboard of Forewarn, as code: the one source of the committed
``deploy/grafana/dashboards/forewarn-overview.json`` (a unit test checks the file equals what this builds)
and of the panels the demo renders to a PNG from Prometheus (:mod:`forewarn.observability_plot`).

Every expression uses only metrics a service exports; tests/integration/test_metric_references.py scrapes
the running services and fails on any other. Latency is shown end to end (reading -> score and reading ->
alert, from the readings' event time, so on a live plant's clocks) and per stage (ingest request, features /
scorer / alerter batch, notifier call).

Regenerate after a change: ``python -m forewarn.dashboards``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "forewarn-prometheus"}  # deploy/grafana/provisioning/datasources
DASHBOARD_FILE = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "forewarn-overview.json"
RATE = "$__rate_interval"  # Grafana's window; the PNG renderer substitutes a fixed one
# Services are scraped with a ``service`` label in every deployment (job names differ: "forewarn" locally).
SERVICES = 'service!=""'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # Grafana legendFormat: {{label}} is replaced by the series' label


@dataclass(frozen=True)
class Panel:
    key: str  # stable name the PNG renderer picks panels by
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    description: str = ""


def _quantiles(metric: str, stage: str, by: str = "") -> tuple[Query, ...]:
    group = f"le{', ' + by if by else ''}"
    label = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Query(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
              f"{stage}{label} p{pct}".strip())
        for q, pct in ((0.5, 50), (0.99, 99))
    )


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


ROWS: tuple[Row, ...] = (
    Row("Pipeline", (
        Panel("throughput", "Throughput per stage", (
            Query(f"sum(rate(forewarn_ingest_readings_accepted_total[{RATE}]))", "ingest: readings accepted"),
            Query(f'sum(rate(forewarn_features_readings_total{{outcome="accepted"}}[{RATE}]))',
                  "features: readings processed"),
            Query(f"sum(rate(forewarn_scorer_scored_total[{RATE}]))", "scorer: vectors scored"),
            Query(f'sum(rate(forewarn_alerter_scores_total{{outcome="applied"}}[{RATE}]))', "alerter: scores applied"),
        ), unit="ops", description="Per second, summed over replicas."),
        Panel("lag", "Lag per stage", (
            Query("sum by (replica) (forewarn_scorer_consumer_lag)", "scorer consumer lag, replica {{replica}}"),
            Query(f"sum(rate(forewarn_ingest_readings_accepted_total[{RATE}])) - "
                  f'sum(rate(forewarn_features_readings_total{{outcome="accepted"}}[{RATE}]))',
                  "features backlog growth (readings/s)"),
            Query(f"sum(rate(forewarn_scorer_scored_total[{RATE}])) - "
                  f"sum(rate(forewarn_alerter_scores_total[{RATE}]))", "alerter backlog growth (scores/s)"),
        ), description="Scorer: blocks of features.vectors not consumed yet. Other stages: what enters minus "
                       "what leaves per second (positive and lasting: the stage falls behind)."),
        Panel("dlq", "Readings to the DLQ", (
            Query(f"sum by (reason) (rate(forewarn_ingest_readings_rejected_total[{RATE}]))", "ingest: {{reason}}"),
            Query(f'sum(rate(forewarn_features_readings_total{{outcome="rejected"}}[{RATE}]))', "features: rejected"),
        ), unit="ops"),
        Panel("ingest_status", "Ingest requests by status", (
            Query(f"sum by (status) (rate(forewarn_ingest_requests_total[{RATE}]))", "{{status}}"),
        ), unit="reqps", description="503 means Kafka did not confirm the readings."),
    )),
    Row("Latency", (
        Panel("end_to_end", "Reading -> score and reading -> alert (p50 / p99)", (
            *_quantiles("forewarn_scorer_reading_age_seconds", "reading -> score (oldest of a block)"),
            *_quantiles("forewarn_alerter_reading_to_alert_seconds", "reading -> alert published"),
        ), unit="s", width=24, description="From the reading's event time (the plant's clock) to the score and to "
                                           "the triggered alert on Kafka. A replay or backfill shows its data's age."),
        Panel("latency", "Latency per stage (p50 / p99)", (
            *_quantiles("forewarn_ingest_request_duration_seconds", "ingest request"),
            *_quantiles("forewarn_features_batch_seconds", "features batch"),
            *_quantiles("forewarn_scorer_batch_seconds", "scorer batch"),
            *_quantiles("forewarn_alerter_batch_seconds", "alerter batch"),
        ), unit="s", width=24, description="Reading -> score is ingest + features batch + scorer batch plus the "
                                           "time in Kafka; -> alert adds the alerter batch."),
    )),
    Row("Alerts and notifications", (
        Panel("alerts", "Alert actions by action and machine type", (
            Query(f"sum by (action, machine_type) (increase(forewarn_alerter_alert_actions_total[{RATE}]))",
                  "{{action}} {{machine_type}}"),
        )),
        Panel("notifier_success", "Notifier success", (
            Query(f'sum by (notifier) (rate(forewarn_alerter_notifier_calls_total{{outcome="ok"}}[{RATE}])) / '
                  f"sum by (notifier) (rate(forewarn_alerter_notifier_calls_total[{RATE}]))", "{{notifier}}"),
        ), unit="percentunit"),
        Panel("deliveries", "Deliveries by result", (
            Query(f"sum by (notifier, result) (rate(forewarn_alerter_deliveries_total[{RATE}]))",
                  "{{notifier}} {{result}}"),
            Query("sum by (notifier) (forewarn_alerter_delivery_queue_depth)", "{{notifier}} queued"),
        )),
        Panel("notifier_latency", "Notifier call latency (p50 / p99)",
              _quantiles("forewarn_alerter_notifier_call_seconds", "", by="notifier"), unit="s"),
    )),
    Row("Model", (
        Panel("model_version", "Model version served", (
            Query("max by (replica) (forewarn_scorer_model_version)", "scorer {{replica}}"),
        ), kind="stat", width=6),
        Panel("scorer_ready", "Scorers ready", (
            Query("sum(forewarn_scorer_ready)", "ready"),
        ), kind="stat", width=6),
        Panel("scored_by_version", "Scores by model version", (
            Query(f"sum by (model_version) (rate(forewarn_scorer_scored_total[{RATE}]))", "version {{model_version}}"),
        ), unit="ops"),
        Panel("drift", "Drift", (
            Query("max by (machine_type) (forewarn_drift_share)", "drifted share {{machine_type}}"),
            Query("max(forewarn_score_drift)", "score drift"),
        ), description="Share of monitored features that drifted in the last judged window, per machine type."),
        Panel("feature_drift", "Feature drift score vs threshold", (
            Query("max by (machine_type, feature) (forewarn_feature_drift_score) / "
                  "max by (machine_type, feature) (forewarn_feature_drift_threshold)",
                  "{{machine_type}} {{feature}}"),
        ), description="Above 1: the feature drifted."),
        Panel("model_health", "Model-health conditions holding", (
            Query("max by (condition, scope) (forewarn_model_health_condition) > 0", "{{condition}} {{scope}}"),
        )),
        Panel("live_figures", "Live figures from labels", (
            Query("max(forewarn_live_precision)", "precision"),
            Query("max(forewarn_live_recall)", "recall"),
            Query("max(forewarn_live_calibration_error)", "calibration error"),
            Query('max by (figure) (forewarn_model_holdout{figure=~"precision|recall"})', "holdout {{figure}}"),
        )),
    )),
    Row("Processes", (
        Panel("up", "Targets up", (Query(f"up{{{SERVICES}}}", "{{service}} {{replica}}"),), kind="stat", width=24),
        Panel("cpu", "CPU (cores)", (
            Query(f"rate(process_cpu_seconds_total{{{SERVICES}}}[{RATE}])", "{{service}} {{replica}}"),
        )),
        Panel("memory", "Resident memory", (
            Query(f"process_resident_memory_bytes{{{SERVICES}}}", "{{service}} {{replica}}"),
        ), unit="bytes"),
    )),
)


def panels() -> dict[str, Panel]:
    return {panel.key: panel for row in ROWS for panel in row.panels}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    height = 4 if panel.kind == "stat" else 8
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(panel.queries)
        ],
    }
    if panel.kind == "stat":
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    else:
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                           "tooltip": {"mode": "multi"}}
    return body


def build_dashboard() -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row in ROWS:
        out.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                    "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        panel_id, y, x, row_height = panel_id + 1, y + 1, 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            body = _panel_json(panel, panel_id, x, y)
            out.append(body)
            panel_id, x = panel_id + 1, x + panel.width
            row_height = max(row_height, body["gridPos"]["h"])
        y += row_height
    return {
        "uid": "forewarn-overview",
        "title": "Forewarn overview",
        "description": "Generated by src/forewarn/dashboards.py: edit that, then run python -m forewarn.dashboards.",
        "tags": ["forewarn"],
        "schemaVersion": 39,
        "version": 2,
        "editable": False,
        "refresh": "30s",
        "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": out,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    DASHBOARD_FILE.write_text(render())
    print(f"wrote {DASHBOARD_FILE}")


if __name__ == "__main__":
    main()
