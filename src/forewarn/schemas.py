"""Event schemas on the wire (Kafka JSON values) and at the API.

Timestamps travel as integer epoch milliseconds (``ts``) so every consumer, Python or Spark, reads the
same instant without parsing. The JSON Schema of a reading is in ``docs/schemas/sensor-reading.json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from forewarn.reading_check import Reason


def to_epoch_ms(value: Any) -> int:
    """RFC 3339 text or epoch milliseconds -> epoch milliseconds (UTC)."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be RFC 3339 text or epoch milliseconds, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("timestamp must be finite")
        return int(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"timestamp {value!r} is neither RFC 3339 (2026-01-31T12:00:00Z) nor epoch milliseconds"
            ) from None
        if moment.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone; add 'Z' or an offset such as +01:00")
        return int(moment.timestamp() * 1000)
    raise ValueError("timestamp must be RFC 3339 text or epoch milliseconds")


EpochMs = Annotated[int, BeforeValidator(to_epoch_ms)]


SENSOR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Reading(BaseModel):
    """One reading of one machine: the unit of ingest and of ``sensor.readings``. On the topic (key:
    machine_id as UTF-8) it is written by the ingest service (services/ingest/records.py) as compact
    JSON. Sensor names and valid ranges per machine type come from the asset config
    (src/forewarn/resources/assets/*.yaml); ingest has already checked them."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str = Field(min_length=1, max_length=128, description=(
        "The machine; also the Kafka key, so one machine's readings stay in order in one partition."))
    machine_type: str = Field(min_length=1, max_length=64,
                              description="A machine type declared in the asset config, e.g. pump.")
    ts: EpochMs = Field(description=(
        "Event time in epoch milliseconds (UTC). Senders may post RFC 3339 text; ingest converts it."),
        json_schema_extra={"minimum": 0})
    values: dict[str, float] = Field(description=(
        "Sensor name to value: finite and inside the sensor's valid range. Always written as JSON floats "
        "(e.g. 1450.0)."), json_schema_extra={"minProperties": 1, "propertyNames": {"pattern": SENSOR_NAME_PATTERN}})
    site: str | None = Field(None, max_length=128, description=(
        "Optional plant or site; ingest always writes the key (null when the sender gave none)."))
    ingested_at: int | None = Field(None, description=(
        "Ingest timestamp: the ingest server's clock (epoch ms) when it accepted the request. For latency "
        "measurement: a consumer's now minus ingested_at is the pipeline delay after ingest; ingested_at "
        "minus ts is the sender's delay. Set by the ingest service on every reading; absent only if another "
        "producer wrote the message directly."))


class RejectedReading(BaseModel):
    """Value of a message on sensor.readings.dlq (key: the request id): one rejected reading, as received,
    with the reason (written by services/ingest/records.py)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "request_id": "3f2b9c1e8a7d4b6f", "index": 12, "reason": "out_of_range",
        "message": "sensor 'temperature' = 500.0 is outside its valid range [-40, 200]",
        "raw": '{"machine_id":"pump-0007","machine_type":"pump","ts":1769860800000,"values":{"temperature":500.0}}',
        "ingested_at": 1769860800123}]})

    request_id: str = Field(description="The request's id (the sender's X-Request-ID, or generated); also in the "
                                        "HTTP answer.")
    index: int = Field(ge=0, description="0-based position of the reading in the batch; for NDJSON bodies, its "
                                         "line number.")
    reason: Reason = Field(description="Why it was rejected (the first failed check; order in "
                                       "services/ingest/validation.py).")
    message: str = Field(description="The same explanation the sender got, for people.")
    raw: str = Field(description="The rejected item as JSON text (NaN, Infinity and integers beyond 64 bits "
                                 "survive), or the undecodable NDJSON line itself.")
    raw_truncated: bool | None = Field(None, description="Present and true when raw was cut (see "
                                                         "services/ingest/records.py MAX_RAW_CHARS).")
    ingested_at: int = Field(ge=0, description="The ingest server's clock (epoch ms) when it handled the request.")


def sensor_reading_json_schema() -> dict[str, Any]:
    """The JSON Schema document of ``sensor.readings`` and its dead letters, as docs/schemas/sensor-reading.json
    holds it (``forewarn schemas`` writes it; tests/unit/test_schema_files.py fails when it drifts)."""
    definitions = {"SensorReading": Reading.model_json_schema(mode="serialization"),
                   "DeadLetter": RejectedReading.model_json_schema(mode="serialization")}
    for name, definition in definitions.items():
        definition["title"] = name
        definition.pop("$defs", None)
    reason = definitions["DeadLetter"]["properties"]["reason"]
    reason.pop("$ref", None)
    reason["enum"] = [r.value for r in Reason]
    reason["type"] = "string"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://forewarn.dev/schemas/sensor-reading.json",
        "title": "SensorReading",
        "description": "Value of a message on the Kafka topic sensor.readings; the dead-letter message of "
                       "sensor.readings.dlq is $defs/DeadLetter in this file. Generated from "
                       "forewarn.schemas (Reading, RejectedReading) by 'forewarn schemas': do not edit.",
        "$ref": "#/$defs/SensorReading",
        "$defs": definitions,
    }


class GroundTruthEvent(BaseModel):
    """What really happened to a machine: written by the simulator and by replays, used as labels."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str
    machine_type: str
    ts: EpochMs
    kind: Literal["failure", "maintenance", "degradation_start"]
    mode: str | None = None


class FeatureVector(BaseModel):
    """One machine's features after a reading (``features.vectors``, and the Redis online store)."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str
    machine_type: str
    ts: int = Field(description="Event time (epoch ms) of the reading that produced this vector.")
    feature_set_version: str
    features: dict[str, float | None]
    site: str | None = None


class Contribution(BaseModel):
    feature: str
    sensor: str | None = None
    value: float | None = None
    contribution: float


class RiskScore(BaseModel):
    """The scorer's verdict on one feature vector (``risk.scores``)."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str
    machine_type: str
    ts: int = Field(description="Event time (epoch ms) of the reading behind the score.")
    p_failure: float = Field(ge=0.0, le=1.0, description="P(failure within the model's horizon).")
    horizon: str | None = Field(None, description="The horizon the probability refers to, e.g. '24h'.")
    rul: float | None = Field(None, description="Estimated remaining useful life, in the model's unit.")
    model_name: str
    model_version: str
    top_contributors: list[Contribution] = Field(default_factory=list)
    site: str | None = None
    scored_at: int | None = Field(None, description="Wall-clock epoch ms when the score was produced.")
    ingested_at: int | None = Field(None, description="When ingest accepted the reading behind it (epoch ms).")


# ---- alert and feedback events (the alerter's outputs) ------------------------------------------
# The one place of their contract: the alerter writes them (forewarn.alerting.events builds them from its
# decisions), notifiers and the lake read them (forewarn.etl.lake derives the feedback table from
# FeedbackEvent). Field order is the order of the JSON on the topics: keep it.

AlertStatus = Literal["idle", "pending", "triggered", "acknowledged", "resolved"]
"""Where a dedup key is in its lifecycle (an alert exists from ``triggered`` on)."""
AlertState = Literal["triggered", "acknowledged", "resolved"]
AlertAction = Literal["trigger", "escalate", "acknowledge", "resolve", "feedback"]
FeedbackKind = Literal["acknowledged", "confirmed_failure", "false_alarm", "maintenance_done"]
Severity = Literal["info", "warning", "error", "critical"]


class AlertEvent(BaseModel):
    """One change of one alert (``alerts`` topic, and what notifiers receive). ``event_id`` is unique and
    stable: reprocessing yields the same id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    action: AlertAction
    alert_id: str
    revision: int = Field(description="The alert's change counter: orders the events of one alert.")
    dedup_key: str
    machine_id: str
    machine_type: str
    site: str | None = None
    mode: str
    state: AlertState
    previous_state: AlertStatus
    reason: str
    severity: Severity
    p_failure: float
    peak_p: float
    rul: float | None = None
    horizon: str | None = None
    model_version: str | None = None
    evidence: list[Contribution] = Field(default_factory=list)
    escalation_level: int = 0
    outcome: FeedbackKind | None = None
    ts: int = Field(description="Event time (epoch ms) of the score behind this change.")
    opened_ts: int
    resolved_ts: int | None = None
    emitted_at: int = Field(description="Wall time (epoch ms) the alerter decided this change.")


class AlertWindow(BaseModel):
    start_ts: int = Field(description="Event time the alert triggered.")
    end_ts: int = Field(description="Event time it resolved, or of its latest score while still open.")


class FeedbackEvent(BaseModel):
    """A label for the training ETL (``feedback`` topic): what an operator said about an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    kind: FeedbackKind
    alert_id: str
    dedup_key: str
    machine_id: str
    machine_type: str
    site: str | None = None
    failure_ts: int | None = None
    failure_mode: str | None = None
    alert_window: AlertWindow = Field(json_schema_extra={"lake_prefix": "window_"})
    alert_state: AlertState
    comment: str | None = Field(None, json_schema_extra={"lake": False})  # free text: not a lake column
    operator: str | None = None
    received_at: int



# ---- model health (the monitor's output, the alerter's second input) -----------------------------

HealthCondition = Literal[
    "data_drift", "score_drift", "precision_decay", "recall_decay", "calibration_decay", "retrain_refused",
    "no_reference",
]
"""What the monitor judges each window; one dedup key per (model, condition, scope)."""


class ModelHealthEvent(BaseModel):
    """One judgement of one model-health condition (``model.health`` topic). The monitor emits it every
    window for every condition it could judge, active or not, so the alerter's hysteresis sees the
    condition clear as well as hold. ``event_id`` is stable: a reprocessed window yields the same id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    condition: HealthCondition
    scope: str = Field(description="A machine type, or 'all' for a fleet-wide condition.")
    active: bool = Field(description="True while the condition holds in this window.")
    value: float = Field(description="The measured quantity (drift share, live precision, ...).")
    limit: float = Field(description="Where the condition starts to hold (value compared with it).")
    model_name: str
    model_version: str | None = None
    window: int = Field(ge=0, description="The monitor's window counter for this model version.")
    window_start_ts: int = Field(description="Event time (epoch ms) of the window's first vector or label.")
    window_end_ts: int = Field(description="Event time (epoch ms) of its last.")
    summary: str = Field(description="One line for people: what holds and what to do.")
    sensors: list[str] = Field(default_factory=list, description="Sensors named by a drift condition.")
    details: dict[str, Any] = Field(default_factory=dict)
    emitted_at: int = Field(description="Wall time (epoch ms) the monitor judged it.")


class DeadLetter(BaseModel):
    """What ``alerts.dlq`` receives when a delivery gives up."""

    delivery_id: str
    notifier: str
    attempts: int
    error: str
    failed_at: int
    event: AlertEvent
    kind: Literal["delivery_failed"] = "delivery_failed"
