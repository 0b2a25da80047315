"""``forewarn simulate``: a seeded plant of machines that wear out, fail and get serviced."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from forewarn.cli.shared_options import (
    ConfigOpt,
    StartOpt,
    delivery_arguments,
    stop_on_sigterm,
    with_delivery_options,
)


def _share(default: float, help: str) -> Any:
    """An option that is a share of readings, values or machines: 0 to 1."""
    return typer.Option(default, min=0.0, max=1.0, help=help)


def register(app: typer.Typer) -> None:
    @app.command()
    @with_delivery_options
    def simulate(
        machines: Annotated[int, typer.Option("--machines", "-n", min=1, help="Machines in the plant.")] = 20,
        config: ConfigOpt = None,
        duration: Annotated[str, typer.Option(help="Simulated time to cover, e.g. 6h, 7d.")] = "1d",
        start: StartOpt = None,
        interval: Annotated[
            str | None,
            typer.Option(help="Per-machine sampling interval (default: each type's, from the config)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Same seed and options => identical output.")] = 0,
        degrading_fraction: float = _share(0.3, "Share of machines that start to degrade during the run."),
        maintenance_every: Annotated[
            str, typer.Option(help="Mean time between scheduled maintenances per machine; 'off' disables.")
        ] = "7d",
        glitch_rate: float = _share(0.001, "Share of glitched values."),
        dropout_rate: float = _share(0.002, "Share of missing values."),
        missing_rate: float = _share(0.001, "Share of lost readings."),
        outlier_rate: float = _share(0.0005, "Share of readings with an out-of-range value."),
        fleet_seed: Annotated[
            int | None,
            typer.Option(help="Seed of the machines and their operating points (default: --seed). Keep it "
                         "and change --seed for the same plant in another week."),
        ] = None,
        drift: Annotated[
            str | None,
            typer.Option(help="Change the plant from --drift-at on: sensor-offset, sensor-gain, regime or "
                         "new-failure-mode."),
        ] = None,
        drift_at: Annotated[
            str | None, typer.Option(help="When the drift starts, from the run's start, e.g. 6h.")
        ] = None,
        drift_type: Annotated[
            str | None,
            typer.Option(help="Machine type that drifts (default: the first type with the drift's sensors)."),
        ] = None,
        drift_sensors: Annotated[
            str | None,
            typer.Option(help="Comma-separated sensors that drift (default: per kind; not for regime)."),
        ] = None,
        drift_size: Annotated[
            float | None,
            typer.Option(help="Offset in sensor scales (0.5), gain (1.8), new mean load (0.9), or daily "
                         "chance of a new-mode fault (0.8)."),
        ] = None,
        **delivery: Any,
    ) -> None:
        """Simulate a plant: readings with noise, load cycles, glitches, dropouts and outliers; machines
        that degrade (hours to days), fail, and are repaired or serviced; ground truth as events.

        Examples: 'forewarn simulate --to parquet history/ -n 200 --duration 30d --seed 7' (fast history);
        'forewarn simulate -n 20 --duration 2d --speedup 1440 --interval 10s' (live demo: 2 days in 2 min).
        Without --start, history ends at the last UTC midnight and paced runs end at the current time.

        Drift: 'forewarn simulate --drift sensor-offset --drift-at 6h --drift-type pump' recalibrates the
        pumps' first sensor 6 h in; the summary names the type, sensors and onset injected.
        """
        from forewarn.sim.commands import run_simulation

        stop_on_sigterm()
        run_simulation(
            machines=machines,
            config=config,
            duration=duration,
            start=start,
            interval=interval,
            seed=seed,
            degrading_fraction=degrading_fraction,
            maintenance_every=maintenance_every,
            rates=(glitch_rate, dropout_rate, missing_rate, outlier_rate),
            fleet_seed=fleet_seed,
            drift=drift,
            drift_at=drift_at,
            drift_type=drift_type,
            drift_sensors=drift_sensors,
            drift_size=drift_size,
            **delivery_arguments(**delivery),
        )
