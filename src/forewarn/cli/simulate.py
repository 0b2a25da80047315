"""``forewarn simulate``: a seeded plant of machines that wear out, fail and get serviced."""

from __future__ import annotations

import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class To(StrEnum):
    kafka = "kafka"
    http = "http"
    parquet = "parquet"


class Truth(StrEnum):
    auto = "auto"
    kafka = "kafka"
    parquet = "parquet"
    none = "none"


class BodyFormat(StrEnum):
    ndjson = "ndjson"
    json = "json"


# Output options shared with `forewarn replay`.
ToOpt = Annotated[To, typer.Option("--to", help="Where readings go.")]
TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="Shorthand: the folder for --to parquet, the URL for --to http, the topic for --to kafka."
    ),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="Asset config: plant, cmapss, ai4i or a YAML path (default: FOREWARN_ASSET_CONFIG or plant).",
    ),
]
TopicOpt = Annotated[str | None, typer.Option(help="Readings topic (default: <prefix>sensor.readings).")]
TruthTopicOpt = Annotated[
    str | None, typer.Option(help="Ground-truth topic (default: <prefix>ground.truth).")
]
TruthOpt = Annotated[
    Truth, typer.Option(help="Where ground truth goes; auto = Parquet beside Parquet readings, else Kafka.")
]
OutOpt = Annotated[Path | None, typer.Option(help="Folder for Parquet output (readings/ and ground_truth/).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace Parquet output already in the folder.")]
UrlOpt = Annotated[str | None, typer.Option(help="Ingest API URL for --to http.")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="FOREWARN_API_KEY", help="API key for --to http (a development ingest takes forewarn-dev-key)."
    ),
]
ApiKeyHeaderOpt = Annotated[str, typer.Option(help="Header that carries the API key.")]
FormatOpt = Annotated[BodyFormat, typer.Option("--format", help="HTTP body: NDJSON lines or a JSON array.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Readings per HTTP request.")]
SpeedupOpt = Annotated[
    float | None,
    typer.Option(
        help="Event time per wall time, e.g. 720 (1 h per 5 s). 0 or inf: as fast as possible (default)."
    ),
]
RateOpt = Annotated[float | None, typer.Option(help="Cap on readings per second overall (paces the run).")]
StartOpt = Annotated[
    str | None, typer.Option(help="Event-time start: RFC 3339 or epoch ms (default: see above).")
]
ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar.")]


def output_spec(**kwargs: Any) -> Any:
    from forewarn.sim.outputs import OutputSpec

    for key in ("to", "truth", "body_format"):
        kwargs[key] = kwargs[key].value
    return OutputSpec(**kwargs)


def stop_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl-C does: flush what was sent, print the summary."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        target: TargetArg = None,
        machines: Annotated[int, typer.Option("--machines", "-n", min=1, help="Machines in the plant.")] = 20,
        config: ConfigOpt = None,
        duration: Annotated[str, typer.Option(help="Simulated time to cover, e.g. 6h, 7d.")] = "1d",
        start: StartOpt = None,
        interval: Annotated[
            str | None,
            typer.Option(help="Per-machine sampling interval (default: each type's, from the config)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Same seed and options => identical output.")] = 0,
        degrading_fraction: Annotated[
            float,
            typer.Option(min=0.0, max=1.0, help="Share of machines that start to degrade during the run."),
        ] = 0.3,
        maintenance_every: Annotated[
            str, typer.Option(help="Mean time between scheduled maintenances per machine; 'off' disables.")
        ] = "7d",
        glitch_rate: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Share of glitched values.")
        ] = 0.001,
        dropout_rate: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Share of missing values.")
        ] = 0.002,
        missing_rate: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Share of lost readings.")
        ] = 0.001,
        outlier_rate: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Share of readings with an out-of-range value.")
        ] = 0.0005,
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
        """Simulate a plant: readings with noise, load cycles, glitches, dropouts and outliers; machines
        that degrade (hours to days), fail, and are repaired or serviced; ground truth as events.

        Examples: 'forewarn simulate --to parquet history/ -n 200 --duration 30d --seed 7' (fast history);
        'forewarn simulate -n 20 --duration 2d --speedup 1440 --interval 10s' (live demo: 2 days in 2 min).
        Without --start, history ends at the last UTC midnight and paced runs end at the current time.
        """
        from forewarn.sim.commands import run_simulation

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
        run_simulation(
            spec,
            machines=machines,
            config=config,
            duration=duration,
            start=start,
            interval=interval,
            seed=seed,
            degrading_fraction=degrading_fraction,
            maintenance_every=maintenance_every,
            rates=(glitch_rate, dropout_rate, missing_rate, outlier_rate),
            rate=rate,
            speedup=speedup,
            progress=progress,
        )
