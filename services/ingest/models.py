"""The HTTP contract as pydantic models: they feed OpenAPI (and the tests' reference validator).

The hot path does not run them (see ``validation.py``); responses are built as plain dicts of the same
shape. A reading's sensors and ranges depend on the asset config, so OpenAPI shows a generic
``values`` object and the description says where the real rules live.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from forewarn.reading_check import Reason
from forewarn.schemas import to_epoch_ms

from .validation import MAX_MACHINE_ID_LENGTH, MAX_SITE_LENGTH

Timestamp = Annotated[StrictInt | StrictFloat | StrictStr, AfterValidator(to_epoch_ms)]


class ReadingIn(BaseModel):
    """One reading as a plant system sends it."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "machine_id": "pump-0007",
                    "machine_type": "pump",
                    "ts": "2026-01-31T12:00:00Z",
                    "values": {"temperature": 61.5, "vibration": 3.2, "pressure": 5.1},
                    "site": "plant-a",
                }
            ]
        },
    )

    machine_id: str = Field(min_length=1, max_length=MAX_MACHINE_ID_LENGTH, description="Kafka key.")
    machine_type: str = Field(description="A machine type of the asset config, e.g. pump.")
    ts: Timestamp = Field(
        description="Event time: RFC 3339 with a zone (2026-01-31T12:00:00Z) or epoch milliseconds; "
        "at most the asset config's max_future_skew ahead of the server clock."
    )
    values: dict[str, float] = Field(
        min_length=1,
        description="Sensor name to finite number; names and valid ranges come from the asset config "
        "(GET the config's YAML, e.g. src/forewarn/resources/assets/plant.yaml).",
    )
    site: str | None = Field(None, max_length=MAX_SITE_LENGTH)


class RejectedReading(BaseModel):
    index: int = Field(description="0-based position in the batch (for NDJSON, the line number).")
    reason: Reason
    message: str = Field(description="What is wrong and how to fix it.")


class IngestAccepted(BaseModel):
    """Every valid reading is durably in sensor.readings; every invalid one is in the DLQ."""

    request_id: str
    accepted: int = Field(description="Readings written to sensor.readings.")
    rejected: list[RejectedReading] = Field(description="Readings refused (and sent to the DLQ); do not resend.")


class IngestUnavailable(BaseModel):
    """Kafka did not confirm every reading in time: resend only ``retry_indexes`` after Retry-After."""

    request_id: str
    error: str
    message: str
    accepted: int = Field(description="How many readings are durably in sensor.readings.")
    accepted_indexes: list[int] = Field(description="Readings confirmed by Kafka: do not resend them.")
    retry_indexes: list[int] = Field(description="Valid readings Kafka did not confirm: resend them.")
    dead_letters_unconfirmed: int = Field(
        0, description="Rejected readings whose DLQ record Kafka did not confirm (they are still listed here)."
    )
    rejected: list[RejectedReading] = Field(description="Invalid readings: fix them, resending will not help.")


class Problem(BaseModel):
    """A request refused as a whole; nothing in it was stored."""

    request_id: str
    error: str
    message: str = Field(description="What went wrong and what to do.")

