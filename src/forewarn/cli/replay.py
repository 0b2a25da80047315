"""``forewarn replay``: stream a recorded dataset (C-MAPSS, AI4I, a config-shaped table) with event times."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from forewarn.cli.shared_options import (
    ConfigOpt,
    StartOpt,
    delivery_arguments,
    stop_on_sigterm,
    with_delivery_options,
)


class SourceFormat(StrEnum):
    auto = "auto"
    cmapss = "cmapss"
    ai4i = "ai4i"
    table = "table"


def register(app: typer.Typer) -> None:
    @app.command()
    @with_delivery_options
    def replay(
        path: Annotated[Path, typer.Argument(help="Dataset file, or a C-MAPSS folder with --subset.")],
        config: ConfigOpt = None,
        source_format: Annotated[
            SourceFormat, typer.Option("--source-format", help="Dataset kind; auto recognises all three.")
        ] = SourceFormat.auto,
        subset: Annotated[str | None, typer.Option(help="C-MAPSS subset in a folder: FD001..FD004.")] = None,
        split: Annotated[
            str | None, typer.Option(help="C-MAPSS split in a folder: train (ends in failures) or test.")
        ] = None,
        machine_type: Annotated[
            str | None, typer.Option(help="Machine type for C-MAPSS engines (default: turbofan).")
        ] = None,
        start: StartOpt = None,
        interval: Annotated[
            str | None, typer.Option(help="Event time between cycles/rows (default: the config's interval).")
        ] = None,
        **delivery: Any,
    ) -> None:
        """Replay a dataset into Kafka (or the ingest API, or Parquet) with event timestamps.

        C-MAPSS engines become machines FD001-u001.. (one reading per cycle at start + cycle * interval;
        a train file adds a failure event at each engine's last cycle). AI4I rows become readings of
        machines AI4I-L/M/H; its failure flags become ground-truth events, never sensor values. Any
        CSV/Parquet with machine_id, machine_type, ts and the config's sensors replays as is.

        Without --start, cycle- or row-indexed data ends at the last UTC midnight (paced runs: now);
        tables with a ts column keep their times (--start shifts them).

        Example: 'forewarn replay ../shared/data/cmapss/train_FD001.txt --config cmapss'.
        """
        from forewarn.sim.commands import run_replay

        stop_on_sigterm()
        run_replay(
            path,
            config=config,
            subset=subset,
            split=split,
            source_format=source_format.value,
            machine_type=machine_type,
            start=start,
            interval=interval,
            **delivery_arguments(**delivery),
        )
