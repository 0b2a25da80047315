"""The one topic-side reading check (forewarn.reading_check): each fault with its reason code and message,
in a fixed order. The features service and the Spark decode both run it (test_etl_rows.py compares them)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from forewarn.reading_check import MAX_EXACT_MS, Reason, check_reading, is_value, not_json

TYPES = {"pump", "compressor"}
GOOD: dict[str, Any] = {"machine_id": "p1", "machine_type": "pump", "ts": 1_767_225_600_000,
                        "values": {"temperature": 50.0}}


def test_a_sound_reading_passes_with_extra_fields_and_odd_values() -> None:
    assert check_reading(GOOD, TYPES) is None
    assert check_reading({**GOOD, "site": 3, "colour": "red", "values": {"x": "hot", "y": None}}, TYPES) is None
    assert check_reading({**GOOD, "ts": -(MAX_EXACT_MS - 1)}, TYPES) is None


@pytest.mark.parametrize(
    ("reading", "reason", "message"),
    [
        ([1, 2], Reason.NOT_AN_OBJECT, "not a JSON object"),
        ({**GOOD, "machine_type": "turbine"}, Reason.UNKNOWN_MACHINE_TYPE, "unknown machine_type 'turbine'"),
        ({**GOOD, "machine_type": ["pump"]}, Reason.UNKNOWN_MACHINE_TYPE, "unknown machine_type ['pump']"),
        ({**GOOD, "machine_id": ""}, Reason.INVALID_FIELD, "machine_id missing or not a string"),
        ({**GOOD, "machine_id": 7}, Reason.INVALID_FIELD, "machine_id missing or not a string"),
        ({**GOOD, "ts": "2026-01-01T00:00:00Z"}, Reason.BAD_TIMESTAMP, "ts must be epoch milliseconds (integer)"),
        ({**GOOD, "ts": True}, Reason.BAD_TIMESTAMP, "ts must be epoch milliseconds (integer)"),
        ({**GOOD, "ts": 1.5e12}, Reason.BAD_TIMESTAMP, "ts must be epoch milliseconds (integer)"),
        ({**GOOD, "ts": MAX_EXACT_MS}, Reason.BAD_TIMESTAMP,
         "ts out of range (must be within +-2**53 epoch milliseconds)"),
        ({**GOOD, "values": [1]}, Reason.INVALID_VALUES, "values must be an object of sensor name to number"),
        # Two faults: the first in the check's order is the reason.
        ({**GOOD, "machine_type": "turbine", "ts": "x"}, Reason.UNKNOWN_MACHINE_TYPE,
         "unknown machine_type 'turbine'"),
        ({**GOOD, "ts": 2**60, "values": None}, Reason.BAD_TIMESTAMP,
         "ts out of range (must be within +-2**53 epoch milliseconds)"),
    ],
)
def test_each_fault_has_its_reason_and_message(reading: object, reason: Reason, message: str) -> None:
    rejection = check_reading(reading, TYPES)
    assert rejection is not None and (rejection.reason, rejection.message) == (reason, message)


def test_not_json() -> None:
    with pytest.raises(orjson.JSONDecodeError) as caught:
        orjson.loads(b"{nope")
    rejection = not_json(caught.value)
    assert rejection.reason is Reason.MALFORMED_JSON and rejection.message.startswith("not JSON: ")


@pytest.mark.parametrize(("value", "counts"), [(1, True), (2.5, True), (True, False), (None, False),
                                               ("1", False), (float("nan"), False), (float("inf"), False),
                                               ({"a": 1}, False)])
def test_only_finite_json_numbers_count_as_values(value: object, counts: bool) -> None:
    assert is_value(value) is counts
