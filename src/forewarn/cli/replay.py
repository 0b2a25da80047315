"""``forewarn replay``: stream a recorded dataset (C-MAPSS, AI4I, a config-shaped table) with event times."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from forewarn.cli.simulate import (
    ApiKeyHeaderOpt,
    ApiKeyOpt,
    BatchSizeOpt,
    BodyFormat,
    ConfigOpt,
    FormatOpt,
    OutOpt,
    OverwriteOpt,
    ProgressOpt,
    RateOpt,
    SpeedupOpt,
    StartOpt,
    TargetArg,
    To,
    ToOpt,
    TopicOpt,
    Truth,
    TruthOpt,
    TruthTopicOpt,
    UrlOpt,
    output_spec,
    stop_on_sigterm,
)


class SourceFormat(StrEnum):
    auto = "auto"
    cmapss = "cmapss"
    ai4i = "ai4i"
    table = "table"


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        path: Annotated[Path, typer.Argument(help="Dataset file, or a C-MAPSS folder with --subset.")],
        target: TargetArg = None,
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
        rate: RateOpt = None,
        speedup: SpeedupOpt = None,
        to: ToOpt = To.kafka,
        topic: TopicOpt = None,
        truth_topic: TruthTopicOpt = None,
        truth: TruthOpt = Truth.auto,
        out: OutOpt = None,
        overwrite: OverwriteOpt = False,
        url: UrlOpt = None,
        api_key: ApiKeyOpt = None,
        api_key_header: ApiKeyHeaderOpt = "X-API-Key",
        body_format: FormatOpt = BodyFormat.ndjson,
        batch_size: BatchSizeOpt = 500,
        progress: ProgressOpt = True,
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

        spec = output_spec(
            to=to,
            target=target,
            topic=topic,
            truth_topic=truth_topic,
            truth=truth,
            out=out,
            overwrite=overwrite,
            url=url,
            api_key=api_key,
            api_key_header=api_key_header,
            body_format=body_format,
            batch_size=batch_size,
        )
        stop_on_sigterm()
        run_replay(
            path,
            spec,
            config=config,
            subset=subset,
            split=split,
            source_format=source_format.value,
            machine_type=machine_type,
            start=start,
            interval=interval,
            rate=rate,
            speedup=speedup,
            progress=progress,
        )
