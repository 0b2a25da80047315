"""``forewarn etl stream|build``: Kafka -> Parquet lake, and lake -> labelled training set (Spark)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forewarn.errors import UserError

LakeOpt = Annotated[Path, typer.Option("--lake", help="Data lake folder (readings/, ground_truth/, feedback/).")]


def register(app: typer.Typer) -> None:
    etl = typer.Typer(help="Spark jobs: the Parquet data lake and the labelled training set.", no_args_is_help=True)

    @etl.command("stream")
    def stream(
        lake_dir: LakeOpt = Path("data/lake"),
        checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint folder (default: <lake>/_checkpoints).")
                              ] = None,
        once: Annotated[bool, typer.Option("--once", help="Write what Kafka holds now, then stop.")] = False,
        until_idle: Annotated[float | None, typer.Option(help="Stop after this many seconds without new data.")
                              ] = None,
        duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
        interval: Annotated[float, typer.Option(help="Seconds between micro-batches (not with --once).")] = 30.0,
        max_offsets_per_trigger: Annotated[int | None, typer.Option(help="Cap on records per micro-batch.")] = None,
    ) -> None:
        """Stream sensor.readings, ground.truth and feedback into the lake (Parquet by event date),
        exactly once per record across restarts. Without --once/--until-idle/--duration: until SIGTERM."""
        from forewarn.etl.jobs import stream_command
        from forewarn.etl.stream import Mode

        chosen = [name for name, value in (("--once", once), ("--until-idle", until_idle is not None),
                                           ("--duration", duration is not None)) if value]
        if len(chosen) > 1:
            raise UserError(f"choose one of {', '.join(chosen)}")
        mode: Mode = "once" if once else "until_idle" if until_idle is not None else \
            "duration" if duration is not None else "forever"
        seconds = until_idle if until_idle is not None else duration or 0.0
        report = stream_command(lake_dir, checkpoint, mode, seconds, interval_s=interval,
                                max_offsets_per_trigger=max_offsets_per_trigger)
        for message in report.skipped:
            typer.secho(message, fg=typer.colors.YELLOW, err=True)
        for name in sorted(report.input_rows):
            typer.echo(f"{name:>13}: {report.input_rows[name]} Kafka records in {report.batches[name]} batches")
        typer.echo(f"lake: {lake_dir}")

    @etl.command("build")
    def build(
        lake_dir: LakeOpt = Path("data/lake"),
        out: Annotated[Path, typer.Option("--out", help="Output folder (dataset/, manifest.json).")
                       ] = Path("data/training"),
        horizon: Annotated[str, typer.Option(help="Failure horizon: event time (24h) or readings (30cycles).")
                           ] = "24h",
        rul_cap: Annotated[float | None, typer.Option(help="Cap on RUL, in hours (or cycles).")] = None,
        config: Annotated[str | None, typer.Option(help="Asset config (default: FOREWARN_ASSET_CONFIG or plant).")
                          ] = None,
        grain: Annotated[str | None, typer.Option(help="Keep one row per machine and interval, e.g. 1h.")] = None,
        short_gap: Annotated[float, typer.Option(help="Impute a missing value from one at most this many "
                                                      "sampling intervals old.")] = 5.0,
        condition_decimals: Annotated[int, typer.Option(help="Rounding of condition keys.")] = 1,
        feature_resets: Annotated[bool, typer.Option(help="Reset features at maintenance (the online service "
                                                          "does not: train/serve skew).")] = False,
        buckets: Annotated[int | None, typer.Option(help="Machine buckets for applyInPandas (default: auto).")
                           ] = None,
    ) -> None:
        """Build the labelled training set from the lake: clean, normalize, features (the shared feature
        module, in arrival order), labels; writes Parquet and manifest.json."""
        from forewarn.assets import parse_duration_ms
        from forewarn.etl.jobs import build_command
        from forewarn.etl.spec import BuildSpec, Horizon
        from forewarn.settings import ForewarnSettings

        try:
            spec = BuildSpec(
                config=config or ForewarnSettings().asset_config, horizon=Horizon.parse(horizon), rul_cap=rul_cap,
                short_gap_intervals=short_gap, condition_decimals=condition_decimals,
                grain_ms=parse_duration_ms(grain) if grain else None, feature_resets=feature_resets,
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        result = build_command(lake_dir, out, spec, buckets)
        rows = result.manifest["rows"]
        typer.echo(f"training rows: {rows['training']} ({rows['machines']} machines), labels {rows['labels']}")
        typer.echo(f"by status: {rows['by_status']}")
        typer.echo(f"content hash: {result.manifest['content_hash']}")
        typer.echo(f"wrote {result.dataset} and {result.manifest_path}")

    app.add_typer(etl, name="etl")
