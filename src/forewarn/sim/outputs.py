"""The one place that turns command-line choices into real sinks (Kafka, HTTP, Parquet)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from forewarn import topics
from forewarn.errors import UserError
from forewarn.settings import ForewarnSettings
from forewarn.sim.sinks import NullTruthSink, ReadingSink, TruthSink

Destination = Literal["kafka", "http", "parquet"]
TruthChoice = Literal["auto", "kafka", "parquet", "none"]
DEFAULT_INGEST_URL = "http://127.0.0.1:8000/v1/readings"


@dataclass(frozen=True)
class OutputSpec:
    to: Destination = "kafka"
    target: str | None = None
    """Shorthand positional target: the folder for parquet, the URL for http, the topic for kafka."""
    topic: str | None = None
    truth_topic: str | None = None
    truth: TruthChoice = "auto"
    out: Path | None = None
    overwrite: bool = False
    url: str | None = None
    api_key: str | None = None
    api_key_header: str = "X-API-Key"
    body_format: Literal["ndjson", "json"] = "ndjson"
    batch_size: int = 500

    def folder(self) -> Path | None:
        if self.out is not None:
            return self.out
        return Path(self.target) if self.to == "parquet" and self.target else None

    def truth_kind(self) -> TruthChoice:
        if self.truth != "auto":
            return self.truth
        return "parquet" if self.to == "parquet" else "kafka"


@dataclass
class Outputs:
    readings: ReadingSink
    truth: TruthSink
    description: str


def open_outputs(spec: OutputSpec, settings: ForewarnSettings, sensors: tuple[str, ...]) -> Outputs:
    truth_kind = spec.truth_kind()
    folder = spec.folder()
    if (spec.to == "parquet" or truth_kind == "parquet") and folder is None:
        raise UserError("Parquet output needs a folder: --to parquet DIR (or --out DIR)")
    if folder is not None and (spec.to == "parquet" or truth_kind == "parquet"):
        from forewarn.sim.sink_parquet import prepare_output

        prepare_output(folder, spec.overwrite)

    kafka_sink = None
    readings_topic = spec.topic or (spec.target if spec.to == "kafka" else None)
    readings_topic = readings_topic or settings.kafka.topic(topics.SENSOR_READINGS)
    truth_topic = spec.truth_topic or settings.kafka.topic(topics.GROUND_TRUTH)
    if spec.to == "kafka" or truth_kind == "kafka":
        from forewarn.sim.sink_kafka import kafka_sink as make_kafka_sink

        kafka_sink = make_kafka_sink(
            settings.kafka,
            readings_topic if spec.to == "kafka" else None,
            truth_topic if truth_kind == "kafka" else None,
        )

    readings: ReadingSink
    if spec.to == "kafka":
        assert kafka_sink is not None
        readings, where = kafka_sink, f"Kafka topic {readings_topic}"
    elif spec.to == "http":
        import httpx

        from forewarn.sim.sink_http import HttpReadingSink

        url = spec.url or spec.target or DEFAULT_INGEST_URL
        readings = HttpReadingSink(
            httpx.Client(timeout=30.0, verify=settings.tls.client_context()),  # an https:// ingest: its CA
            url,
            api_key=spec.api_key,
            api_key_header=spec.api_key_header,
            body_format=spec.body_format,
            batch_size=spec.batch_size,
        )
        where = f"ingest API {url}"
    else:
        from forewarn.sim.sink_parquet import ParquetReadingSink

        assert folder is not None
        readings, where = ParquetReadingSink(folder, sensors), f"Parquet {folder}/readings"

    truth: TruthSink
    if truth_kind == "kafka":
        assert kafka_sink is not None
        truth, truth_where = kafka_sink, f"Kafka topic {truth_topic}"
    elif truth_kind == "parquet":
        from forewarn.sim.sink_parquet import ParquetTruthSink

        assert folder is not None
        truth, truth_where = ParquetTruthSink(folder), f"Parquet {folder}/ground_truth"
    else:
        truth, truth_where = NullTruthSink(), "not written"
    return Outputs(readings, truth, f"readings -> {where}; ground truth -> {truth_where}")
