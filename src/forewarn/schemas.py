"""Event schemas on the wire (Kafka JSON values) and at the API.

Timestamps travel as integer epoch milliseconds (``ts``) so every consumer, Python or Spark, reads the
same instant without parsing. The JSON Schema of a reading is in ``docs/schemas/sensor-reading.json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


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


class Reading(BaseModel):
    """One reading of one machine: the unit of ingest and of ``sensor.readings``."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str = Field(min_length=1, max_length=128)
    machine_type: str = Field(min_length=1, max_length=64)
    ts: EpochMs = Field(description="Event time: RFC 3339 or epoch milliseconds; stored as epoch ms.")
    values: dict[str, float] = Field(description="Sensor name to measured value.")
    site: str | None = Field(None, max_length=128)
    ingested_at: int | None = Field(
        None, description="Set by ingest on the wire: its clock (epoch ms) when it accepted the reading."
    )


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


class DeadLetter(BaseModel):
    """What ``alerts.dlq`` receives when a delivery gives up."""

    delivery_id: str
    notifier: str
    attempts: int
    error: str
    failed_at: int
    event: AlertEvent
    kind: Literal["delivery_failed"] = "delivery_failed"
