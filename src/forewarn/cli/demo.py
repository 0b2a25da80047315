"""``forewarn demo``: bring the whole system up locally with embedded defaults and show it working."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo() -> None:
        """Start the local stack and print where everything is."""
        from rich.console import Console

        from forewarn.stack.manager import LocalStack

        console = Console()
        stack = LocalStack(report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))
        state = stack.up()
        console.rule("Forewarn is up")
        console.print(f"Kafka broker     {state['kafka'].address}  (topics: forewarn.topics.ALL)")
        console.print(f"Redis            {state['redis'].address}")
        console.print(f"MLflow UI        {state['mlflow'].address}")
        console.print(f"Logs             {stack.tracker.log_dir}")
        console.print("Stop everything: make down   (or .venv/bin/forewarn stack down)")
