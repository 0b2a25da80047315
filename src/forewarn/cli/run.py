"""``forewarn run <service>``: start one service in the foreground (what a container runs)."""

from __future__ import annotations

import importlib
from enum import StrEnum

import typer


class Service(StrEnum):
    ingest = "ingest"
    features = "features"
    scorer = "scorer"
    alerter = "alerter"
    monitor = "monitor"


def register(app: typer.Typer) -> None:
    @app.command()
    def run(service: Service = typer.Argument(..., help="Which service to run.")) -> None:
        """Run a service until SIGTERM; settings come from FOREWARN_* environment variables."""
        # Each service package has main.py with run(): its one wiring point.
        importlib.import_module(f"forewarn.services.{service.value}.main").run()
