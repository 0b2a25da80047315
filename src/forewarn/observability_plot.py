"""The demo's picture of the key dashboard panels (throughput, latency, alerts, drift), rendered to a PNG
with matplotlib from Prometheus's HTTP API (``query_range``), since Grafana cannot be installed here.

The panels and their queries are the dashboard's own (:mod:`forewarn.dashboards`), so the picture shows
what Grafana would. A panel whose queries return nothing says so instead of drawing empty axes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forewarn import dashboards
from forewarn.errors import UserError

if TYPE_CHECKING:
    import httpx

KEY_PANELS = ("throughput", "latency", "alerts", "drift")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Series:
    name: str
    times: list[float]  # unix seconds
    values: list[float]


@dataclass(frozen=True)
class PanelData:
    title: str
    unit: str
    series: list[Series]
    problem: str = ""  # why a query failed, if one did


def _step_s(start: float, end: float, points: int = 240) -> float:
    return max(1.0, round((end - start) / points))


def _legend(template: str, labels: dict[str, str]) -> str:
    return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def query_panels(client: httpx.Client, start: float, end: float, keys: tuple[str, ...] = KEY_PANELS,
                 step_s: float | None = None) -> dict[str, PanelData]:
    """Each panel's series over [start, end] from the Prometheus ``client`` points at (its base_url)."""
    import httpx

    step = step_s or _step_s(start, end)
    # Grafana's $__rate_interval: at least 4 scrapes (5 s locally) and 2 steps, so rate() has points.
    window = f"{int(max(20.0, 2 * step))}s"
    available = dashboards.panels()
    out: dict[str, PanelData] = {}
    for key in keys:
        panel = available[key]
        series: list[Series] = []
        problems: list[str] = []
        for query in panel.queries:
            expr = query.expr.replace(dashboards.RATE, window)
            try:
                response = client.get("/api/v1/query_range",
                                      params={"query": expr, "start": start, "end": end, "step": step})
            except httpx.TransportError as exc:
                raise UserError(f"Prometheus at {client.base_url} cannot be reached ({exc}); start it with "
                                "`forewarn stack up`") from exc
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            if response.status_code != 200 or body.get("status") != "success":
                problems.append(str(body.get("error") or f"HTTP {response.status_code}"))
                continue
            for result in body["data"]["result"]:
                points = [(float(t), float(v)) for t, v in result["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if points:
                    series.append(Series(_legend(query.legend, result["metric"]),
                                         [t for t, _ in points], [v for _, v in points]))
        out[key] = PanelData(panel.title, panel.unit, series, "; ".join(problems))
    return out


def render_png(panels: dict[str, PanelData], path: Path, start: float, end: float,
               title: str = "Forewarn: key panels") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    columns = 2
    rows = max(1, -(-len(panels) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(14, 4.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, data in zip(flat, panels.values(), strict=False):
        ax.set_title(data.title)
        if not data.series:
            reason = f"no data ({data.problem})" if data.problem else "no data in this time range"
            ax.text(0.5, 0.5, reason, ha="center", va="center", transform=ax.transAxes, color="grey", wrap=True)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for series in data.series[:12]:  # a legend of more is unreadable; Grafana shows them all
            ax.plot([datetime.fromtimestamp(t, tz=UTC) for t in series.times], series.values,
                    label=series.name, linewidth=1.2, marker="." if len(series.times) < 20 else None)
        # Every panel on the same time range, as on a dashboard (and a lone point does not stretch the axis).
        ax.set_xlim(datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(end, tz=UTC))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.set_ylabel({"s": "seconds", "ops": "per second", "percentunit": "share"}.get(data.unit, ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(f"{title}, {datetime.fromtimestamp(start, tz=UTC):%Y-%m-%d %H:%M:%S} to "
                    f"{datetime.fromtimestamp(end, tz=UTC):%H:%M:%S} UTC")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_key_panels(prometheus_url: str, path: Path, start: float, end: float,
                    transport: Any = None) -> Path:
    """Query the key panels over [start, end] (unix seconds) and write them to ``path`` as a PNG."""
    import httpx

    with httpx.Client(base_url=prometheus_url, timeout=10, transport=transport) as client:
        panels = query_panels(client, start, end)
    return render_png(panels, path, start, end)
