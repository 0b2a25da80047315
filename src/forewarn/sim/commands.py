"""What ``forewarn simulate`` and ``forewarn replay`` do once their options are parsed: build the source
and the sinks, run them through the driver, print the summary. Kept out of the CLI modules so the
commands stay thin and this wiring can be called from tests and scripts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from forewarn.assets import AssetConfig, AssetConfigError, load_asset_config
from forewarn.errors import UserError
from forewarn.settings import ForewarnSettings
from forewarn.sim.batch import Chunk
from forewarn.sim.drift import DriftSpec, parse_sensor_list
from forewarn.sim.driver import Pacer, RunStats, is_paced, run
from forewarn.sim.outputs import Outputs, OutputSpec, open_outputs
from forewarn.sim.report import drift_rows, iso, progress_bar, summary_table
from forewarn.sim.timing import default_start, parse_duration, parse_speedup, parse_start


def _config(settings: ForewarnSettings, name: str | None) -> AssetConfig:
    try:
        return load_asset_config(name or settings.asset_config)
    except AssetConfigError as exc:
        raise UserError(str(exc)) from None


def run_simulation(
    spec: OutputSpec,
    *,
    machines: int,
    config: str | None,
    duration: str,
    start: str | None,
    interval: str | None,
    seed: int,
    degrading_fraction: float,
    maintenance_every: str,
    rates: tuple[float, float, float, float],
    rate: float | None,
    speedup: float | None,
    progress: bool,
    settings: ForewarnSettings | None = None,
    console: Console | None = None,
    fleet_seed: int | None = None,
    drift: str | None = None,
    drift_at: str | None = None,
    drift_type: str | None = None,
    drift_sensors: str | None = None,
    drift_size: float | None = None,
) -> RunStats:
    from forewarn.sim.options import SimOptions
    from forewarn.sim.plant import PlantSimulator

    settings = settings or ForewarnSettings()
    console = console or Console(stderr=True)
    asset_config = _config(settings, config)
    duration_ms = parse_duration(duration, "--duration")
    interval_ms = parse_duration(interval, "--interval") if interval else None
    maintenance_ms = (
        None
        if maintenance_every.strip().lower() in ("off", "0", "none")
        else parse_duration(maintenance_every, "--maintenance-every")
    )
    pace = parse_speedup(speedup)
    glitch, dropout, missing, outlier = rates
    try:
        options = SimOptions(
            machines=machines,
            duration_ms=duration_ms,
            interval_ms=interval_ms,
            seed=seed,
            degrading_fraction=degrading_fraction,
            maintenance_every_ms=maintenance_ms,
            glitch_rate=glitch,
            dropout_rate=dropout,
            missing_rate=missing,
            outlier_rate=outlier,
            fleet_seed=fleet_seed,
            drift=drift_spec(drift, drift_at, drift_type, drift_sensors, drift_size),
        )
        # The start depends on how long a paced run takes, which depends on the fleet: size it first.
        expected = PlantSimulator(asset_config, options).expected_readings()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    start_ms = parse_start(start)
    if start_ms is None:
        wall = None
        if is_paced(pace, rate):
            wall = max(duration_ms / 1000 / pace if pace else 0.0, (expected or 0) / rate if rate else 0.0)
        start_ms = default_start(duration_ms, wall)
    options = SimOptions(**{**options.__dict__, "start_ms": start_ms})
    simulator = PlantSimulator(asset_config, options)

    outputs = open_outputs(spec, settings, simulator.fleet.sensors)
    truth = simulator.drift_truth()
    console.print(
        f"simulating {machines} machines of {asset_config.name} for {duration} (seed {seed}"
        f"{'' if fleet_seed is None else f', fleet seed {fleet_seed}'}): {outputs.description}"
        + (f"\ninjecting {truth.describe()} from {iso(truth.onset_ms)}" if truth else "")
    )
    stats = _drive(simulator.chunks(), outputs, start_ms, pace, rate, expected, progress, console)
    extra: dict[str, object] = {"seed": seed}
    if fleet_seed is not None:
        extra["fleet seed"] = fleet_seed
    extra.update({"config": asset_config.name, **drift_rows(truth), **_sink_summary(outputs)})
    console.print(summary_table("simulation summary", stats, machines, extra))
    return stats


def drift_spec(
    kind: str | None,
    at: str | None,
    machine_type: str | None = None,
    sensors: str | None = None,
    size: float | None = None,
) -> DriftSpec | None:
    """The --drift options as one value (None without --drift); raises UserError saying what to fix."""
    if kind is None:
        given = [name for name, value in (("--drift-at", at), ("--drift-type", machine_type),
                                          ("--drift-sensors", sensors), ("--drift-size", size)) if value is not None]
        if given:
            raise UserError(f"{', '.join(given)} only apply with --drift KIND; add --drift or leave them out")
        return None
    if at is None:
        raise UserError("--drift needs --drift-at: when the change starts, from the run's start (e.g. 6h)")
    try:
        return DriftSpec(
            kind=kind.strip().lower(),
            at_ms=parse_duration(at, "--drift-at"),
            machine_type=machine_type,
            sensors=parse_sensor_list(sensors) if sensors is not None else None,
            size=size,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _sink_summary(outputs: Outputs) -> dict[str, object]:
    """What the destination itself reported (the ingest API's accepted/rejected counts)."""
    report = getattr(outputs.readings, "summary", None)
    return report() if callable(report) else {}


def _drive(
    chunks: Iterable[Chunk],
    outputs: Outputs,
    origin_ms: int,
    speedup: float | None,
    rate: float | None,
    expected: int | None,
    progress: bool,
    console: Console,
) -> RunStats:
    pacer = Pacer(origin_ms, speedup, rate) if is_paced(speedup, rate) else None
    with progress_bar(console, expected, progress) as advance:
        return run(chunks, outputs.readings, outputs.truth, pacer, advance)


def run_replay(
    path: Path,
    spec: OutputSpec,
    *,
    config: str | None,
    subset: str | None,
    split: str | None,
    source_format: str,
    machine_type: str | None,
    start: str | None,
    interval: str | None,
    rate: float | None,
    speedup: float | None,
    progress: bool,
    settings: ForewarnSettings | None = None,
    console: Console | None = None,
) -> RunStats:
    from forewarn.sim.replay import open_dataset

    settings = settings or ForewarnSettings()
    console = console or Console(stderr=True)
    asset_config = _config(settings, config)
    pace = parse_speedup(speedup)
    dataset = open_dataset(
        path,
        asset_config,
        source_format=source_format,
        subset=subset,
        split=split,
        machine_type=machine_type,
        interval_ms=parse_duration(interval, "--interval") if interval else None,
    )
    start_ms = parse_start(start)
    if start_ms is None and dataset.synthetic_time:
        wall = None
        if is_paced(pace, rate):
            wall = max(dataset.span_ms / 1000 / pace if pace else 0.0, len(dataset) / rate if rate else 0.0)
        start_ms = default_start(dataset.span_ms, wall)
    chunks = list(dataset.chunks(start_ms))
    origin = min((int(c.batch.ts.min()) for c in chunks if len(c.batch)), default=start_ms or 0)

    outputs = open_outputs(spec, settings, dataset.sensors)
    console.print(
        f"replaying {dataset.description} ({len(dataset):,} readings, {len(dataset.machines)} "
        f"machines) with config {asset_config.name}: {outputs.description}"
    )
    stats = _drive(chunks, outputs, origin, pace, rate, len(dataset), progress, console)
    extra = {**dataset.notes, **_sink_summary(outputs)}
    console.print(summary_table("replay summary", stats, len(dataset.machines), extra))
    return stats
