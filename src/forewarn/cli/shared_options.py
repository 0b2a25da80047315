"""The options ``forewarn simulate`` and ``forewarn replay`` share, declared once.

Both commands end with the same delivery options: where readings go (``--to`` and its details), how fast
(``--rate``, ``--speedup``) and ``--progress``. Typer has no option groups, so :func:`with_delivery_options`
shows the parameters of :func:`delivery_arguments` in place of a command's ``**delivery``, which receives
them; the command hands them to :func:`delivery_arguments` to get what ``run_simulation`` and
``run_replay`` take. Nothing here imports the simulator: ``forewarn --help`` stays fast.
"""

from __future__ import annotations

import inspect
import signal
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

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


ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="Asset config: plant, cmapss, ai4i or a YAML path (default: FOREWARN_ASSET_CONFIG or plant).",
    ),
]
StartOpt = Annotated[
    str | None, typer.Option(help="Event-time start: RFC 3339 or epoch ms (default: see above).")
]
TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="Shorthand: the folder for --to parquet, the URL for --to http, the topic for --to kafka."
    ),
]
RateOpt = Annotated[float | None, typer.Option(help="Cap on readings per second overall (paces the run).")]
SpeedupOpt = Annotated[
    float | None,
    typer.Option(
        help="Event time per wall time, e.g. 720 (1 h per 5 s). 0 or inf: as fast as possible (default)."
    ),
]
ToOpt = Annotated[To, typer.Option("--to", help="Where readings go.")]
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
ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar.")]


def delivery_arguments(
    target: TargetArg = None,
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
) -> dict[str, Any]:
    """The delivery options as ``run_simulation`` / ``run_replay`` take them: the destination as one
    ``OutputSpec`` (plain strings, not the CLI's enums), the pacing and the progress bar."""
    from forewarn.sim.outputs import OutputSpec

    spec = OutputSpec(
        to=to.value, target=target, topic=topic, truth_topic=truth_topic, truth=truth.value, out=out,
        overwrite=overwrite, url=url, api_key=api_key, api_key_header=api_key_header,
        body_format=body_format.value, batch_size=batch_size,
    )
    return {"spec": spec, "rate": rate, "speedup": speedup, "progress": progress}


Command = TypeVar("Command", bound=Callable[..., Any])


def with_delivery_options(command: Command) -> Command:
    """Show the delivery options in place of ``command``'s ``**delivery`` (its last parameter, so they
    close the --help listing), which then receives them by name. The delivery target argument follows the
    command's own arguments."""
    own = inspect.signature(command, eval_str=True)
    kept = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    if len(kept) == len(own.parameters):
        raise TypeError(f"{command.__name__} needs a **delivery parameter to receive the delivery options")
    shared = inspect.signature(delivery_arguments, eval_str=True).parameters.values()
    # Typer reads a command's parameters with inspect.signature, which honours __signature__.
    command.__signature__ = own.replace(parameters=[*kept, *shared])  # type: ignore[attr-defined]
    return command


def stop_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl-C does: flush what was sent, print the summary."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
