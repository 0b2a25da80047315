"""``forewarn stack install | up | down | status``."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from forewarn.stack.manager import LocalStack


def register(app: typer.Typer) -> None:
    stack_app = typer.Typer(
        help="Run the local Kafka, Redis, MLflow, Prometheus and Alertmanager as background processes."
    )
    app.add_typer(stack_app, name="stack")

    def _stack(profile: str | None = None) -> LocalStack:
        from rich.console import Console

        from forewarn.stack.config import StackSettings
        from forewarn.stack.manager import LocalStack

        console = Console(stderr=True)
        settings = StackSettings()
        if profile is not None:
            settings = settings.model_copy(update={"stack": settings.stack.model_copy(update={"profile": profile})})
        return LocalStack(settings, report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))

    @stack_app.command()
    def install() -> None:
        """Fetch the Kafka jars (Maven Central); install redis-server, prometheus and
        prometheus-alertmanager (apt) if missing. Idempotent."""
        _stack().install()

    @stack_app.command()
    def up(profile: str = typer.Option(
            None, "--profile", help="default (plaintext on loopback) or secure (TLS, users, ACLs, MLflow auth); "
                                    "default: FOREWARN_STACK__PROFILE, else default.")) -> None:
        """Start Kafka (KRaft), Redis, MLflow, Prometheus and Alertmanager, wait until each is ready, and
        create the topics. What already runs is left running (Prometheus and Alertmanager reload their
        regenerated configs)."""
        from forewarn.errors import UserError

        if profile is not None and profile not in ("default", "secure"):
            raise UserError(f"unknown --profile {profile!r}: choose default or secure")
        begun = time.monotonic()
        stack = _stack(profile)
        stack.up()
        _print_status(stack.status_json())
        if stack.settings.stack.profile == "default":
            typer.echo("profile default: plaintext on 127.0.0.1, no passwords (a quick start; docs/SECURITY.md "
                       "has the secure profile)")
        typer.echo(f"stack healthy in {time.monotonic() - begun:.1f}s; stop it with: forewarn stack down")

    @stack_app.command()
    def down() -> None:
        """Stop the processes that 'stack up' started (and nothing else)."""
        stopped = _stack().down()
        typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")

    @stack_app.command()
    def status(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
        """Health, address, PID and resident memory of each component. Exit status 1 when any is unhealthy."""
        state = _stack().status_json()
        if as_json:
            typer.echo(json.dumps(state))
        else:
            _print_status(state)
        if not all(item["healthy"] for item in state.values()):
            raise typer.Exit(1)


def _print_status(state: dict[str, dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("component", "healthy", "address", "pid", "memory", "log")
    for name, item in state.items():
        healthy = "[green]yes[/green]" if item["healthy"] else "[red]no[/red]"
        memory = "-" if item.get("rss_mb") is None else f"{item['rss_mb']:.0f} MB"
        table.add_row(name, healthy, str(item["address"]), str(item["pid"] or "-"), memory, str(item["log"]))
    Console().print(table)
