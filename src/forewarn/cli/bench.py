"""``forewarn bench <what>``: measure a real path against a baseline run in the same process, write JSON.

Adding a benchmark: a module ``forewarn.bench.<what>`` with a function that returns a dict, and here one
command decorated with ``@bench_app.command("<what>")`` that imports it inside the function (keeps
``forewarn --help`` fast), runs it under :func:`progress_bar`, then calls :func:`write_result` and
:func:`show_result`. Exit non-zero when the benchmark's own checks fail.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

bench_app = typer.Typer(
    help="Benchmarks on the real stack, each against a baseline in the same run; results as JSON.",
    no_args_is_help=True,
)

JsonPath = Annotated[Path, typer.Option("--json", help="Write the result to this JSON file.", dir_okay=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


# ---- shared by every benchmark ---------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPUs, memory, load, library versions."""
    import confluent_kafka
    import psutil

    cpu_model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu_model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                             cpu_model)
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
    }


def write_result(path: Path, benchmark: str, result: dict[str, Any], started: float) -> dict[str, Any]:
    document = {
        "benchmark": benchmark,
        **result,
        "wall_s": round(time.monotonic() - started, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=_plain) + "\n")
    return document


def write_timeline(json_path: Path, columns: dict[str, list[Any]], title: str) -> dict[str, str]:
    """The per-second timeline beside the result (compact JSON, and a plot of it): it is long, and people
    read it as a picture."""
    from forewarn.bench.timeline import plot_timeline

    data_path = json_path.with_suffix(".timeline.json")
    plot_path = json_path.with_suffix(".timeline.png")
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_text(json.dumps(columns, separators=(",", ":")) + "\n")
    plot_timeline(columns, plot_path, title)
    return {"timeline_file": data_path.name, "timeline_plot": plot_path.name}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers, booleans and lists (a measurement may carry them)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def show_result(document: dict[str, Any], keys: list[str], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", title=f"bench {document['benchmark']}")
    for key in keys:
        table.add_row(key, str(document.get(key)))
    console = Console()
    console.print(table)
    console.print(f"written to {path}")


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``update(completed)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda completed: progress.update(task, completed=completed)


# ---- benchmarks ------------------------------------------------------------------------------------

@bench_app.command("ingest")
def ingest(
    json_path: JsonPath,
    readings: Annotated[int, typer.Option(help="Readings to send (bounded).", min=1)] = 200_000,
    batch: Annotated[int, typer.Option(help="Readings per request.", min=1)] = 500,
    connections: Annotated[int, typer.Option(help="Concurrent client connections.", min=1)] = 4,
    invalid_ratio: Annotated[float, typer.Option(help="Share of invalid readings (go to the DLQ).")] = 0.01,
    timeout_s: Annotated[float, typer.Option(help="Give up sending after this long.", min=10)] = 300.0,
) -> None:
    """One ingest worker (uvicorn, 1 process) vs a bare producer on the same broker; accounting must close."""
    from forewarn.bench.ingest import IngestBenchConfig, run_ingest_bench
    from forewarn.settings import ForewarnSettings

    started = time.monotonic()
    settings = ForewarnSettings()
    config = IngestBenchConfig(
        kafka=settings.kafka, readings=readings, batch=batch, connections=connections,
        invalid_ratio=invalid_ratio, timeout_s=timeout_s, asset_config=settings.asset_config,
    )
    with progress_bar("readings answered", readings) as update:
        result = run_ingest_bench(config, progress=update)
    document = write_result(json_path, "ingest", result, started)
    show_result(
        document,
        ["readings_per_s", "baseline_readings_per_s", "ratio", "meets_target", "sent", "accepted", "rejected",
         "in_topic", "in_dlq", "accounting_closed", "request_latency_ms", "status_counts"],
        json_path,
    )
    if not result["accounting_closed"]:
        why = " (the run hit --timeout-s before sending everything)" if result["timed_out"] else ""
        typer.secho(
            f"accounting does not close{why}: accepted must equal in_topic, rejected in_dlq, and together sent",
            fg=typer.colors.RED, err=True,
        )
        raise typer.Exit(1)


@bench_app.command("features")
def features(
    json_path: JsonPath,
    machines: Annotated[int, typer.Option(help="Simulated fleet size.", min=1)] = 10_000,
    duration: Annotated[str, typer.Option(help="Simulated time per machine at 1 reading/s (e.g. 60s).")] = "60s",
    partitions: Annotated[int, typer.Option(help="Partitions of the fresh topics.", min=1)] = 4,
    batch_max: Annotated[int, typer.Option(help="Kafka messages per processing batch.", min=1)] = 50,
    emit_interval_ms: Annotated[int, typer.Option(help="0: a vector per reading.", min=0)] = 0,
) -> None:
    """The features service (one worker) on the real broker and Redis vs a bare batched consumer."""
    from rich.console import Console

    from forewarn.bench.features import run_features_bench

    started = time.monotonic()
    result = run_features_bench(machines=machines, duration=duration, partitions=partitions, batch_max=batch_max,
                                emit_interval_ms=emit_interval_ms, console=Console(stderr=True))
    document = write_result(json_path, "features", result, started)
    show_result(
        document,
        ["readings_per_s", "baseline_readings_per_s", "ratio", "state_bytes_per_machine", "redis_bytes_per_machine",
         "readings", "machines", "service_peak_rss_mb"],
        json_path,
    )


@bench_app.command("scorer")
def scorer(
    json_path: JsonPath,
    rows: Annotated[int, typer.Option(help="Rows scored in the batch-path measurement.", min=1000)] = 200_000,
    trees: Annotated[int, typer.Option(help="Boosting rounds of the bench model.", min=1)] = 100,
    block_rows: Annotated[int, typer.Option(help="Rows per feature block.", min=1)] = 2000,
    explain_above: Annotated[float, typer.Option(help="Risk above which contributions are computed.")] = 0.2,
    requests: Annotated[int, typer.Option(help="On-demand requests timed.", min=10)] = 1000,
) -> None:
    """The scorer's batch path vs a bare Booster.predict on the same rows, and on-demand latency."""
    from rich.console import Console

    from forewarn.bench.scorer import run_scorer_bench

    started = time.monotonic()
    result = run_scorer_bench(rows=rows, rounds=trees, batch=block_rows, explain_above=explain_above,
                              requests=requests, console=Console(stderr=True))
    document = write_result(json_path, "scorer", result, started)
    show_result(
        document,
        ["rows_per_s", "baseline_rows_per_s", "ratio", "explained_share", "on_demand_p50_ms", "on_demand_p99_ms",
         "meets_target"],
        json_path,
    )


@bench_app.command("e2e")
def e2e(
    json_path: JsonPath,
    rate: Annotated[float, typer.Option(help="Offered readings per second.", min=1)] = 25_000,
    duration: Annotated[float, typer.Option(help="Seconds of load (bounded).", min=5, max=7200)] = 60,
    machines: Annotated[int, typer.Option(help="Simulated fleet size.", min=1)] = 5_000,
    partitions: Annotated[int, typer.Option(help="Partitions of the fresh topics.", min=1)] = 4,
    interval: Annotated[str, typer.Option(help="Simulated time between a machine's readings.")] = "1m",
    warmup: Annotated[float, typer.Option(help="Seconds of each run left out of the latency figures.")] = 10,
    find_max: Annotated[bool, typer.Option("--find-max", help="Step the rate up until the lag keeps growing.")] = False,
    start_rate: Annotated[float, typer.Option(help="--find-max: first rate.", min=1)] = 10_000,
    step: Annotated[float, typer.Option(help="--find-max: rate increment.", min=1)] = 10_000,
    max_rate: Annotated[float, typer.Option(help="--find-max: highest rate tried.", min=1)] = 200_000,
    step_seconds: Annotated[float, typer.Option(help="--find-max: seconds per rate.", min=5)] = 30,
    features_workers: Annotated[int, typer.Option(
        help="Features worker processes (replicas sharing the partitions).", min=1, max=8)] = 1,
) -> None:
    """The whole streaming path (load -> features -> Redis -> scorer -> alerter) at a fixed offered rate,
    against a bare produce-then-consume pass through the same broker."""
    from rich.console import Console

    from forewarn.bench.e2e import E2EOptions, run_e2e_bench

    started = time.monotonic()
    options = E2EOptions(rate=rate, duration_s=duration, machines=machines, partitions=partitions, interval=interval,
                         warmup_s=warmup, find_max=find_max, start_rate=start_rate, step=step, max_rate=max_rate,
                         step_s=step_seconds, features_workers=features_workers)
    result = run_e2e_bench(options, Console(stderr=True))
    title = (f"bench e2e --find-max: {start_rate:,.0f} readings/s, +{step:,.0f} every {step_seconds:.0f} s" if find_max
             else f"bench e2e at {rate:,.0f} readings/s offered")
    result.update(write_timeline(json_path, result.pop("timeline"), f"{title} ({features_workers} features workers)"))
    document = write_result(json_path, "e2e", result, started)
    show_result(
        document,
        ["readings_per_s", "offered_readings_per_s", "limit_readings_per_s", "ratio", "max_sustainable_readings_per_s",
         "risk_latency_ms", "alert_latency_ms", "lost", "duplicates", "incidents", "pages", "cpu_seconds",
         "peak_rss_mb"],
        json_path,
    )
    if document["lost"] or document["duplicates"]:
        typer.secho(f"lost {document['lost']}, duplicates {document['duplicates']}: see {json_path}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@bench_app.command("drift")
def drift(
    json_path: JsonPath,
    kind: Annotated[str, typer.Option(
        help="Drift injected after the clean phase: sensor-offset, sensor-gain, regime, new-failure-mode, or "
             "'all' (each in turn, fresh services each time).")] = "sensor-offset",
    machines: Annotated[int, typer.Option(help="Simulated fleet size (history and live).", min=3)] = 80,
    interval: Annotated[str, typer.Option(help="Simulated time between a machine's readings.")] = "2m",
    history: Annotated[str, typer.Option(help="Simulated history the first champion is trained on.")] = "5d",
    seed: Annotated[int, typer.Option(help="Fleet seed S (the live run uses seed S+1, same fleet).")] = 11,
    degrading_fraction: Annotated[float, typer.Option(
        help="Share of machines that start to degrade during the live run.", min=0, max=1)] = 0.3,
    history_degrading_fraction: Annotated[float, typer.Option(
        help="The same over the history (longer, so a larger share for about the same daily rate).",
        min=0, max=1)] = 0.6,
    speedup: Annotated[float, typer.Option(help="Event seconds per wall second of the live run.", min=1)] = 720.0,
    window_event_s: Annotated[float, typer.Option(help="Event seconds per monitor window.", min=60)] = 3600.0,
    clean_windows: Annotated[int, typer.Option(help="Monitor windows before the onset.", min=1)] = 50,
    drift_windows: Annotated[int, typer.Option(help="Monitor windows after the onset.", min=1)] = 6,
    sample_interval_s: Annotated[float | None, typer.Option(
        help="Monitor sample interval in wall seconds (default: a twentieth of a window).")] = None,
    min_rows: Annotated[int, typer.Option(
        help="Monitor's FOREWARN_MONITOR__MIN_ROWS: sampled vectors of a type before it is judged.",
        min=10)] = 100,
    partitions: Annotated[int, typer.Option(help="Partitions of the fresh topics.", min=1)] = 4,
    retrain: Annotated[bool, typer.Option(
        "--retrain/--no-retrain", help="Let the monitor trigger 'forewarn retrain' and follow it to serving.")] = False,
    retrain_timeout_s: Annotated[float, typer.Option(
        help="--retrain: how long to follow the retraining after the load ends.", min=10)] = 420.0,
) -> None:
    """A seeded plant through features, scorer and monitor: a clean phase, then a drift. Scores the monitor's
    windows against the simulator's answer key; the monitor's CPU per reading against the pipeline's."""
    from rich.console import Console

    from forewarn.bench.drift import DriftBenchOptions, run_drift_bench
    from forewarn.errors import UserError
    from forewarn.sim.drift import DRIFT_KINDS

    if kind != "all" and kind not in DRIFT_KINDS:
        raise UserError(f"unknown --kind {kind!r}; choose one of: {', '.join(DRIFT_KINDS)}, all")
    started = time.monotonic()
    options = DriftBenchOptions(
        kinds=tuple(DRIFT_KINDS) if kind == "all" else (kind,), machines=machines, interval=interval,
        history=history, seed=seed, degrading_fraction=degrading_fraction,
        history_degrading_fraction=history_degrading_fraction, speedup=speedup, window_event_s=window_event_s,
        clean_windows=clean_windows, drift_windows=drift_windows, sample_interval_s=sample_interval_s,
        min_rows=min_rows, partitions=partitions,
        retrain=retrain, retrain_timeout_s=retrain_timeout_s,
    )
    result = run_drift_bench(options, Console(stderr=True))
    import sys

    # What was typed, so the figures can be reproduced.
    result["command"] = " ".join(["forewarn", *sys.argv[1:]]) if sys.argv else None
    document = write_result(json_path, "drift", result, started)
    show_result(
        document,
        ["detected", "detection_delay_s", "detection_delay_windows", "drifted_features_found",
         "drifted_features_true", "false_alarm_windows", "clean_windows", "retrain_triggered", "promoted_version",
         "loop_seconds", "monitor_cpu_us_per_reading", "pipeline_cpu_us_per_reading",
         "monitor_to_pipeline_cpu_ratio", "notes"],
        json_path,
    )
