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
