"""``forewarn eda``: an HTML report on a training set, logged to MLflow when it is reachable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("eda")
    def eda(
        data: Annotated[Path, typer.Option("--data", help="Training set: the --out folder of 'forewarn etl build'.")
                        ] = Path("data/training"),
        out: Annotated[Path, typer.Option("--out", help="HTML report to write.")] = Path("data/reports/eda.html"),
        mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the report to MLflow.")] = True,
        sample: Annotated[int, typer.Option(min=1000, help="Rows read at most (evenly spaced).")] = 200_000,
    ) -> None:
        """Exploratory analysis: sensor distributions, correlations, missingness, trends before failures,
        label balance, as one HTML file with embedded plots."""
        from forewarn.etl import eda as report_module
        from forewarn.settings import ForewarnSettings

        report = report_module.build_report(data, sample)
        path = report_module.write(report, out)
        typer.echo(f"wrote {path}")
        if not mlflow:
            return
        uri = ForewarnSettings().mlflow.tracking_uri
        if not report_module.mlflow_reachable(uri):
            typer.secho(f"MLflow at {uri} is not reachable: the report was not logged (start it with "
                        "'forewarn stack up', set FOREWARN_MLFLOW__TRACKING_URI, or pass --no-mlflow)",
                        fg=typer.colors.YELLOW, err=True)
            return
        run_id = report_module.log_to_mlflow(path, report, uri)
        typer.echo(f"logged to MLflow at {uri}: experiment {report_module.EXPERIMENT}, run {run_id}")
