"""``forewarn promote``: set the ``champion`` alias only for a version that passes the gates and beats it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote(
        version: Annotated[str, typer.Option(help="Registered version to promote, or 'latest'.")] = "latest",
        min_f1: Annotated[float, typer.Option(help="Holdout F1 floor.")] = 0.5,
        max_fairness_gap: Annotated[float, typer.Option(help="Largest allowed gap between machine types.")] = 0.2,
        max_calibration_error: Annotated[float, typer.Option(help="Largest allowed holdout ECE.")] = 0.1,
        audit_log: Annotated[Path | None, typer.Option(help="JSON-lines audit file (default: <state dir>/audit/"
                                                            "promotions.jsonl).")] = None,
        kafka_audit: Annotated[bool, typer.Option("--kafka-audit/--no-kafka-audit",
                                                  help="Also send the record to the Kafka audit topic.")] = True,
    ) -> None:
        """Promote when the gates pass and the candidate beats the champion on the same holdout; otherwise
        say why and exit 1. Every decision is recorded (version tags, audit log, Kafka 'audit')."""
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from forewarn.features import FEATURE_SET_VERSION
        from forewarn.stack.config import StackSettings
        from forewarn.training.promote import GateLimits, run_promotion

        settings = StackSettings()
        outcome = run_promotion(
            tracking_uri=settings.mlflow.tracking_uri, name=settings.mlflow.model_name,
            alias=settings.mlflow.champion_alias, version=version,
            limits=GateLimits(min_f1, max_fairness_gap, max_calibration_error),
            audit_path=audit_log or settings.state_dir / "audit" / "promotions.jsonl",
            kafka_settings=settings.kafka if kafka_audit else None, feature_set_version=FEATURE_SET_VERSION,
        )
        d = outcome.decision
        typer.echo(f"{outcome.model} version {outcome.version}: {d.decision} ({d.comparison})")
        for reason in d.reasons:
            typer.secho(f"  refused because {reason}", fg=typer.colors.RED, err=True)
        for note in d.notes:
            typer.echo(f"  note: {note}")
        champion = outcome.audit["champion_after"]
        typer.echo(f"champion is now version {champion}" if champion else "there is no champion")
        typer.echo(f"recorded in {outcome.audit_path}; {outcome.kafka_note}")
        if d.decision == "refused":
            raise typer.Exit(code=1)
