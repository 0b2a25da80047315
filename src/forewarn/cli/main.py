"""The ``forewarn`` command: parse, dispatch, and turn expected failures into one clear line.

Each verb lives in its own module with a ``register(app)`` function; importing them is cheap because
heavy libraries (Spark, LightGBM, MLflow) are imported inside the commands that need them.
"""

from __future__ import annotations

import importlib
import sys

import typer

from forewarn.errors import UserError

# One module per verb (or group of verbs); each exposes register(app: typer.Typer).
_VERB_MODULES: tuple[str, ...] = (
    "forewarn.cli.stack",
    "forewarn.cli.run",
    "forewarn.cli.simulate",
    "forewarn.cli.replay",
    "forewarn.cli.bench",
    "forewarn.cli.demo",
    "forewarn.cli.etl",
    "forewarn.cli.eda",
    "forewarn.cli.train",
    "forewarn.cli.promote",
    "forewarn.cli.retrain",
    "forewarn.cli.evaluate",
    "forewarn.cli.schemas",
    "forewarn.cli.audit",
    "forewarn.cli.keys",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="forewarn",
        help="Forewarn: streaming predictive maintenance. Run 'forewarn COMMAND --help' for details.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for module_name in _VERB_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    app = build_app()
    try:
        app(args=argv, standalone_mode=True)
    except UserError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
