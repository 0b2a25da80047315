"""Progress bar and end-of-run summary for ``simulate`` and ``replay`` (rich, on the terminal)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from forewarn.sim.drift import DriftTruth
from forewarn.sim.driver import Progress as ProgressCallback
from forewarn.sim.driver import RunStats


def iso(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def progress_bar(console: Console, total: int | None, enabled: bool) -> Iterator[ProgressCallback | None]:
    if not enabled:
        yield None
        return
    columns = [
        TextColumn("[bold]readings"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("event time {task.fields[event_time]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("readings", total=total, event_time="-")

        def advance(count: int, last_ts: int | None) -> None:
            bar.update(task, advance=count, event_time=iso(last_ts))

        yield advance


def drift_rows(truth: DriftTruth | None) -> dict[str, object]:
    """Summary rows that say what a run injected: the answer key for whoever looks for the drift."""
    if truth is None:
        return {}
    rows: dict[str, object] = {
        "drift": truth.kind,
        "  drift type": truth.machine_type,
        "  drift sensors": ", ".join(truth.sensors),
        "  drift onset": f"{iso(truth.onset_ms)} (+{truth.at_ms / 3_600_000:g}h)",
        "  drift size": f"{truth.size:g}",
    }
    if truth.mode:
        rows["  drift mode"] = truth.mode
    return rows


def summary_table(title: str, stats: RunStats, machines_total: int, extra: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    rows: list[tuple[str, object]] = [
        ("readings sent", f"{stats.readings:,}"),
        ("machines", f"{len(stats.machines_seen)} of {machines_total}"),
        ("event time", f"{iso(stats.first_ts)} .. {iso(stats.last_ts)}"),
    ]
    failures = stats.failures_by_mode()
    rows.append(("failures", f"{sum(failures.values())}"))
    rows.extend((f"  failure: {mode}", n) for mode, n in failures.items())
    for kind in ("degradation_start", "maintenance"):
        if stats.count_events(kind):
            rows.append((kind.replace("_", " "), stats.count_events(kind)))
    for (kind, mode), n in sorted(stats.events.items(), key=str):
        if kind == "maintenance":
            rows.append((f"  maintenance: {mode}", n))
    for count_name, count in sorted(stats.counts.items()):
        rows.append((count_name.replace("_", " "), f"{count:,}"))
    rows.extend(extra.items())
    rows.append(("wall time", f"{stats.wall_s:.1f} s"))
    rows.append(("throughput", f"{stats.throughput:,.0f} readings/s"))
    if stats.interrupted:
        rows.append(("stopped", "interrupted; everything sent was flushed"))
    for name, value in rows:
        table.add_row(name, str(value))
    return table
