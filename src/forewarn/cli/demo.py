"""``forewarn demo``: the main job (see forewarn.demo)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        machines: int = typer.Option(40, "-n", "--machines", min=2, help="Simulated machines."),
        history: str = typer.Option("10d", help="Simulated history to train the first model on."),
        live_duration: str = typer.Option("2d", help="Simulated time of the live run."),
        speedup: float = typer.Option(1200.0, min=1, help="Event time per wall-clock time in the live run."),
        retrain: bool = typer.Option(False, help="Train a new model even if a champion exists."),
        workdir: Path = typer.Option(Path(".forewarn/demo"), help="Lake, training set, logs."),
        drift: str | None = typer.Option(None, help="Inject a change into the live plant (sensor-offset, "
                                                    "sensor-gain, regime, new-failure-mode): drift is detected, "
                                                    "a model-health alert raised and a retraining started."),
        drift_at: str = typer.Option("1d", help="When the drift starts, in the live run's event time."),
    ) -> None:
        """Stack, simulated plant history, a trained and promoted model, the services, live alerts and model health."""
        from rich.console import Console

        from forewarn.demo import DemoOptions, run_demo

        run_demo(DemoOptions(machines=machines, history=history, live_duration=live_duration, speedup=speedup,
                             retrain=retrain, workdir=workdir, drift=drift, drift_at=drift_at),
                 Console())
