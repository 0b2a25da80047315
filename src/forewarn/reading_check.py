"""The one check of a reading taken off ``sensor.readings``: can a consumer use it, and if not, why not.

Two consumers read the topic: the features service (online) and the Spark decode of the lake (offline,
the training rows). Train/serve parity needs both to refuse exactly the same readings with the same
reason and message, so both call :func:`check_reading` (and :func:`not_json` for a value that does not
parse); tests/unit/test_etl_rows.py and tests/integration/test_etl_parity.py hold them together.

The check is lenient on purpose: producers other than ingest may write the topic directly, and a reading
is usable as long as its identity (machine type and id), its event time and the shape of its values are
sound. Extra fields are carried along, unknown sensors are ignored, and a value that is not a finite
JSON number counts as missing (NaN, see :func:`is_value`) instead of costing the whole reading.

Ingest, which writes the topic, is stricter at the HTTP edge (services/ingest/validation.py adds field
lengths, the asset config's sensors and ranges, the clock): it uses the same :class:`Reason` codes, and
whatever it accepts passes this check (tests/unit/test_ingest_validation.py).
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a reading was rejected: a closed set, so it can label metrics and dead letters.

    The topic check (:func:`check_reading`, :func:`not_json`) gives malformed_json, not_an_object,
    invalid_field, unknown_machine_type, bad_timestamp and invalid_values; the others are the HTTP edge's
    (ingest), which knows the request's shape, the clock and the asset config's sensors and ranges.
    """

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_MACHINE_TYPE = "unknown_machine_type"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    INVALID_VALUES = "invalid_values"
    UNKNOWN_SENSOR = "unknown_sensor"
    NOT_A_NUMBER = "not_a_number"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    message: str


MAX_EXACT_MS = 2**53
"""Event time must lie strictly within +-2**53 ms: the feature engine keeps it in float64, and beyond that
it would lose milliseconds (the engine would refuse the whole batch instead of one reading)."""

_BAD_TS_TYPE = Rejection(Reason.BAD_TIMESTAMP, "ts must be epoch milliseconds (integer)")
_TS_OUT_OF_RANGE = Rejection(Reason.BAD_TIMESTAMP, "ts out of range (must be within +-2**53 epoch milliseconds)")
_BAD_MACHINE_ID = Rejection(Reason.INVALID_FIELD, "machine_id missing or not a string")
_BAD_VALUES = Rejection(Reason.INVALID_VALUES, "values must be an object of sensor name to number")
_NOT_AN_OBJECT = Rejection(Reason.NOT_AN_OBJECT, "not a JSON object")


def not_json(error: Exception) -> Rejection:
    """A message value (or one line of it) that does not parse."""
    return Rejection(Reason.MALFORMED_JSON, f"not JSON: {error}")


def check_reading(reading: object, machine_types: Container[str]) -> Rejection | None:
    """Why a decoded reading cannot be used (None when it can). ``machine_types``: the asset config's
    machine type names (any container: a dict keyed by them works). Checks run in this order and the
    first failure is the reason: an object, a known machine_type, a non-empty machine_id, an integer ts
    within :data:`MAX_EXACT_MS`, values an object."""
    if not isinstance(reading, dict):
        return _NOT_AN_OBJECT
    machine_type = reading.get("machine_type")
    if not isinstance(machine_type, str) or machine_type not in machine_types:
        return Rejection(Reason.UNKNOWN_MACHINE_TYPE, f"unknown machine_type {machine_type!r}")
    machine_id = reading.get("machine_id")
    if not isinstance(machine_id, str) or not machine_id:
        return _BAD_MACHINE_ID
    ts = reading.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return _BAD_TS_TYPE
    if not -MAX_EXACT_MS < ts < MAX_EXACT_MS:
        return _TS_OUT_OF_RANGE
    if not isinstance(reading.get("values"), dict):
        return _BAD_VALUES
    return None


def is_value(value: object) -> bool:
    """Whether a sensor value counts: a finite JSON number (not a boolean). Anything else is missing."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
