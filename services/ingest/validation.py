"""The fast validation path: one reading (a parsed JSON value) -> a normalized reading or a rejection.

This is the topic-side reading check (:mod:`forewarn.reading_check`, what every consumer of
``sensor.readings`` runs) made strict, plus what only the HTTP edge knows: the asset config's sensors and
their ranges, the server clock, field lengths, RFC 3339 timestamps. It shares the check's
:class:`~forewarn.reading_check.Reason` codes and :class:`~forewarn.reading_check.Rejection`, and every
reading it accepts passes the topic check (tests/unit/test_ingest_validation.py), so a consumer never
refuses what ingest wrote.

Pydantic per reading costs several times more than the whole rest of the request, so this is plain
dict checks against per-type sensor ranges computed once from the asset config. The pydantic model in
``models.py`` documents the same contract for OpenAPI; property-based tests hold the two together.

Checks run in a fixed order and the first failure is the reason:
  not_an_object, missing_field, unknown_field, invalid_field (machine_id / machine_type / site),
  unknown_machine_type, bad_timestamp, future_timestamp, invalid_values, then per sensor in the order
  sent: unknown_sensor, not_a_number, not_finite, out_of_range.
"""

from __future__ import annotations

import math
from typing import Any

from forewarn.assets import AssetConfig
from forewarn.reading_check import Reason, Rejection
from forewarn.schemas import to_epoch_ms

REQUIRED_FIELDS = ("machine_id", "machine_type", "ts", "values")
OPTIONAL_FIELDS = ("site",)
MAX_MACHINE_ID_LENGTH = 128
MAX_SITE_LENGTH = 128


class ReadingValidator:
    """Validates readings against one asset config. Build once; ``check`` is the hot path."""

    def __init__(self, config: AssetConfig) -> None:
        self.config = config
        self.max_future_skew_ms = config.max_future_skew_ms
        # machine type -> sensor -> (min, max)
        self._ranges: dict[str, dict[str, tuple[float, float]]] = {
            name: {sensor: (spec.min, spec.max) for sensor, spec in machine.sensors.items()}
            for name, machine in config.machine_types.items()
        }
        self._known_types = ", ".join(sorted(self._ranges))

    def check(self, item: Any, now_ms: int) -> dict[str, Any] | Rejection:
        """A normalized reading (ts in epoch ms, values as floats, site present) or why not."""
        if type(item) is not dict:
            return Rejection(Reason.NOT_AN_OBJECT, f"a reading must be a JSON object, got {_json_kind(item)}")
        size = len(item)
        if size != 4 and not (size == 5 and "site" in item):
            problem = self._field_problem(item)
            if problem is not None:
                return problem
        try:
            machine_id = item["machine_id"]
            machine_type = item["machine_type"]
            ts = item["ts"]
            values = item["values"]
        except KeyError:
            return self._field_problem(item) or Rejection(Reason.MISSING_FIELD, "a required field is missing")
        site = item.get("site")

        if type(machine_id) is not str or not 0 < len(machine_id) <= MAX_MACHINE_ID_LENGTH:
            return Rejection(
                Reason.INVALID_FIELD, f"machine_id must be text of 1 to {MAX_MACHINE_ID_LENGTH} characters"
            )
        if type(machine_type) is not str:
            return Rejection(Reason.INVALID_FIELD, "machine_type must be text")
        if site is not None and (type(site) is not str or len(site) > MAX_SITE_LENGTH):
            return Rejection(Reason.INVALID_FIELD, f"site must be text of at most {MAX_SITE_LENGTH} characters")
        ranges = self._ranges.get(machine_type)
        if ranges is None:
            return Rejection(
                Reason.UNKNOWN_MACHINE_TYPE,
                f"machine type {_clip(machine_type)!r} is not in asset config {self.config.name!r}; "
                f"known types: {self._known_types}",
            )

        kind = type(ts)
        if kind is not int:
            ts = _timestamp_ms(ts)
            if type(ts) is Rejection:
                return ts
        if ts < 0:
            return Rejection(Reason.BAD_TIMESTAMP, "timestamp is before 1970; send epoch milliseconds")
        if ts > now_ms + self.max_future_skew_ms:
            return Rejection(
                Reason.FUTURE_TIMESTAMP,
                f"timestamp is {(ts - now_ms) / 1000:.0f}s ahead of the server clock (at most "
                f"{self.config.max_future_skew} allowed); check the sender's clock and that ts is in "
                "milliseconds, not microseconds",
            )

        if type(values) is not dict or not values:
            return Rejection(Reason.INVALID_VALUES, "values must be a non-empty object of sensor name to number")
        normalized: dict[str, float] = {}
        for name, value in values.items():
            bounds = ranges.get(name)
            if bounds is None:
                return Rejection(
                    Reason.UNKNOWN_SENSOR,
                    f"sensor {_clip(name)!r} is not declared for machine type {machine_type!r}; "
                    f"known sensors: {', '.join(ranges)}",
                )
            kind = type(value)
            if kind is not float and kind is not int:
                return Rejection(
                    Reason.NOT_A_NUMBER, f"sensor {name!r} must be a number, got {_json_kind(value)}"
                )
            low, high = bounds
            # NaN and infinities fail this comparison too (ranges are finite); told apart only when it fails.
            if not low <= value <= high:
                if kind is float and not math.isfinite(value):
                    return Rejection(Reason.NOT_FINITE, f"sensor {name!r} is {value}; send a finite number")
                return Rejection(
                    Reason.OUT_OF_RANGE,
                    f"sensor {name!r} = {_clip(str(value), 40)} is outside its valid range [{low:g}, {high:g}]",
                )
            normalized[name] = float(value)
        return {"machine_id": machine_id, "machine_type": machine_type, "ts": ts, "values": normalized,
                "site": site}

    def _field_problem(self, item: dict[str, Any]) -> Rejection | None:
        missing = [name for name in REQUIRED_FIELDS if name not in item]
        if missing:
            return Rejection(Reason.MISSING_FIELD, f"missing required field(s): {', '.join(missing)}")
        extra = [str(name) for name in item if name not in REQUIRED_FIELDS and name not in OPTIONAL_FIELDS]
        if extra:
            return Rejection(
                Reason.UNKNOWN_FIELD,
                f"unknown field(s): {', '.join(_clip(name) for name in extra[:5])}; a reading has "
                f"{', '.join(REQUIRED_FIELDS)} and optionally site",
            )
        return None


def _timestamp_ms(value: Any) -> int | Rejection:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return Rejection(Reason.BAD_TIMESTAMP, "timestamp must be a finite number of epoch milliseconds")
        return int(value)
    if kind is str:
        try:
            return to_epoch_ms(value)
        except (ValueError, OverflowError) as exc:
            return Rejection(Reason.BAD_TIMESTAMP, _clip(str(exc), 200))
    return Rejection(
        Reason.BAD_TIMESTAMP,
        f"ts must be RFC 3339 text (2026-01-31T12:00:00Z) or epoch milliseconds, got {_json_kind(value)}",
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
