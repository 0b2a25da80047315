"""The demo's PNG of the key panels, from a fake Prometheus: written, with the dashboard's queries, and a
panel whose queries return nothing says so."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from forewarn import dashboards
from forewarn.errors import UserError
from forewarn.observability_plot import KEY_PANELS, plot_key_panels, query_panels

START, END = 1_800_000_000.0, 1_800_000_600.0


def _fake_prometheus(seen: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        query = request.url.params["query"]
        seen.append(query)
        if "forewarn_drift_share" in query or "forewarn_score_drift" in query:
            result: list[dict] = []  # the monitor judged nothing yet
        elif "forewarn_alerter_alert_actions_total" in query:
            return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"})
        else:
            result = [{"metric": {"machine_type": "pump"},
                       "values": [[START + 10 * i, str(float(i % 7))] for i in range(60)] + [[END, "NaN"]]}]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": result}})

    return httpx.MockTransport(handle)


def test_png_is_written_from_the_dashboard_queries(tmp_path: Path) -> None:
    seen: list[str] = []
    path = plot_key_panels("http://prometheus.test", tmp_path / "out" / "panels.png", START, END,
                           transport=_fake_prometheus(seen))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    expected = [q.expr for key in KEY_PANELS for q in dashboards.panels()[key].queries]
    assert len(seen) == len(expected)
    assert all(dashboards.RATE not in q for q in seen)  # Grafana's variable replaced by a real window


def test_panels_without_data_say_so() -> None:
    with httpx.Client(base_url="http://prometheus.test", transport=_fake_prometheus([])) as client:
        panels = query_panels(client, START, END)
    assert panels["drift"].series == [] and panels["drift"].problem == ""
    assert panels["alerts"].series == [] and "parse error" in panels["alerts"].problem
    throughput = panels["throughput"].series
    assert throughput and len(throughput[0].values) == 60  # the NaN point dropped


def test_unreachable_prometheus_is_a_user_error(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UserError, match="forewarn stack up"):
        plot_key_panels("http://prometheus.test", tmp_path / "p.png", START, END, transport=httpx.MockTransport(refuse))
