"""``forewarn schemas``: write (or check) the JSON Schema files generated from forewarn.schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_PATH = Path("docs/schemas/sensor-reading.json")


def render() -> str:
    import json

    from forewarn.schemas import sensor_reading_json_schema

    return json.dumps(sensor_reading_json_schema(), indent=2, ensure_ascii=False) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("schemas")
    def schemas(
        out: Annotated[Path, typer.Option("--out", help="Where the sensor.readings JSON Schema goes.")] = DEFAULT_PATH,
        check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 when the file is stale.")] = False,
    ) -> None:
        """The JSON Schema of sensor.readings and its dead letters, from the pydantic models in
        forewarn.schemas (the one place the reading contract is written)."""
        text = render()
        if check:
            current = out.read_text() if out.exists() else ""
            if current != text:
                typer.secho(f"{out} is stale: run 'forewarn schemas' and commit the result", fg=typer.colors.RED,
                            err=True)
                raise typer.Exit(1)
            typer.echo(f"{out} is up to date")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"wrote {out}")
