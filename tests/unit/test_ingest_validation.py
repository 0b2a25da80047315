"""The fast validation path agrees with the spec: the pydantic model of the API plus the asset config's
rules. Valid readings are accepted and normalized; each kind of fault is rejected with its own reason."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from forewarn.assets import AssetConfig, load_asset_config
from forewarn.reading_check import Reason, Rejection, check_reading, is_value
from forewarn.schemas import to_epoch_ms
from forewarn.services.ingest.models import ReadingIn
from forewarn.services.ingest.records import encode_reading
from forewarn.services.ingest.validation import REQUIRED_FIELDS, ReadingValidator

NOW_MS = 1_770_000_000_000  # 2026-02-02, fixed so timestamps relative to "now" are reproducible
PLANT = load_asset_config("plant")
VALIDATOR = ReadingValidator(PLANT)
SKEW_MS = PLANT.max_future_skew_ms
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_accepts(item: Any, config: AssetConfig = PLANT, now_ms: int = NOW_MS) -> bool:
    """The spec, written the slow and obvious way: pydantic model, then the asset config's rules."""
    try:
        reading = ReadingIn.model_validate(item)
    except ValidationError:
        return False
    machine = config.machine_types.get(reading.machine_type)
    if machine is None or not 0 <= reading.ts <= now_ms + config.max_future_skew_ms:
        return False
    return all(
        name in machine.sensors and machine.sensors[name].min <= value <= machine.sensors[name].max
        for name, value in reading.values.items()
    )


# ---- strategies ------------------------------------------------------------------------------------

machine_ids = st.text(min_size=1, max_size=128)
sites = st.one_of(st.none(), st.text(max_size=128))


def timestamps(low_ms: int = 0, high_ms: int = NOW_MS + SKEW_MS) -> st.SearchStrategy[Any]:
    as_int = st.integers(low_ms, high_ms)
    as_text = st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2026, 2, 1),
        timezones=st.sampled_from([UTC, datetime.now().astimezone().tzinfo]),
    ).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
    return st.one_of(as_int, as_text)


@st.composite
def valid_readings(draw: st.DrawFn, config: AssetConfig = PLANT) -> dict[str, Any]:
    type_name = draw(st.sampled_from(sorted(config.machine_types)))
    sensors = config.machine_types[type_name].sensors
    names = draw(st.lists(st.sampled_from(sorted(sensors)), min_size=1, unique=True))
    values: dict[str, Any] = {}
    for name in names:
        low, high = sensors[name].min, sensors[name].max
        values[name] = draw(st.one_of(
            st.floats(low, high, allow_nan=False),
            st.integers(math.ceil(low), math.floor(high)),
        ))
    item: dict[str, Any] = {
        "machine_id": draw(machine_ids), "machine_type": type_name, "ts": draw(timestamps()), "values": values,
    }
    site = draw(st.one_of(st.just("absent"), sites))
    if site != "absent":
        item["site"] = site
    return item


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def rejection(item: Any) -> Rejection:
    result = VALIDATOR.check(item, NOW_MS)
    assert isinstance(result, Rejection), f"accepted an invalid reading: {item!r}"
    assert result.message
    return result


# ---- valid readings --------------------------------------------------------------------------------

@FAST
@given(valid_readings())
def test_valid_readings_are_accepted_and_normalized(item: dict[str, Any]) -> None:
    result = VALIDATOR.check(item, NOW_MS)
    assert isinstance(result, dict), result
    assert reference_accepts(item)
    assert result["machine_id"] == item["machine_id"]
    assert result["machine_type"] == item["machine_type"]
    assert result["ts"] == to_epoch_ms(item["ts"])
    assert result["values"] == item["values"]
    assert all(type(value) is float for value in result["values"].values())
    assert result["site"] == item.get("site")


@FAST
@given(valid_readings())
def test_what_ingest_writes_passes_the_topic_check_with_every_value_counted(item: dict[str, Any]) -> None:
    """Ingest's validator is the topic-side check made strict: a consumer never refuses what ingest wrote."""
    result = VALIDATOR.check(item, NOW_MS)
    assert isinstance(result, dict), result
    _key, value = encode_reading(result, NOW_MS)
    written = orjson.loads(value)
    assert check_reading(written, PLANT.machine_types) is None
    assert all(is_value(v) for v in written["values"].values())


@FAST
@given(valid_readings(), st.sampled_from(["machine_id", "machine_type", "ts", "values"]), json_values)
def test_what_the_topic_check_refuses_ingest_refuses(item: dict[str, Any], field: str, value: Any) -> None:
    """...except a ts ingest converts (RFC 3339 text, a float): the topic only ever holds integers."""
    assume(not (field == "ts" and type(value) in (str, float)))
    item["ts"] = to_epoch_ms(item["ts"])
    item[field] = value
    if check_reading(item, PLANT.machine_types) is not None:
        rejection(item)


@pytest.mark.parametrize("name", ["cmapss", "ai4i"])
def test_other_asset_configs_work_without_code_changes(name: str) -> None:
    config = load_asset_config(name)
    validator = ReadingValidator(config)

    @settings(max_examples=40, deadline=None)
    @given(valid_readings(config))
    def check(item: dict[str, Any]) -> None:
        assert isinstance(validator.check(item, NOW_MS), dict)

    check()


# ---- each kind of fault, with its reason ------------------------------------------------------------

@FAST
@given(valid_readings(), st.sampled_from(REQUIRED_FIELDS))
def test_missing_field(item: dict[str, Any], field: str) -> None:
    del item[field]
    assert rejection(item).reason is Reason.MISSING_FIELD


@FAST
@given(valid_readings(), st.text(min_size=1, max_size=20), json_values)
def test_unknown_field(item: dict[str, Any], field: str, value: Any) -> None:
    assume(field not in (*REQUIRED_FIELDS, "site"))
    item[field] = value
    assert rejection(item).reason is Reason.UNKNOWN_FIELD


@FAST
@given(valid_readings(), st.one_of(
    st.tuples(st.just("machine_id"), st.one_of(st.just(""), st.text(min_size=129, max_size=140), st.integers(),
                                               st.none(), st.booleans(), st.lists(st.text(), max_size=2))),
    st.tuples(st.just("machine_type"), st.one_of(st.integers(), st.none(), st.booleans(), st.floats())),
    st.tuples(st.just("site"), st.one_of(st.text(min_size=129, max_size=140), st.integers(), st.booleans(),
                                         st.dictionaries(st.text(), st.text(), max_size=2))),
))
def test_invalid_field(item: dict[str, Any], change: tuple[str, Any]) -> None:
    field, value = change
    item[field] = value
    assert rejection(item).reason is Reason.INVALID_FIELD


@FAST
@given(valid_readings(), st.text(max_size=30))
def test_unknown_machine_type(item: dict[str, Any], type_name: str) -> None:
    assume(type_name not in PLANT.machine_types)
    item["machine_type"] = type_name
    assert rejection(item).reason is Reason.UNKNOWN_MACHINE_TYPE


@FAST
@given(valid_readings(), st.one_of(
    st.none(), st.booleans(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.integers()),
    st.sampled_from(["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-31T12:00:00", "12:00", "NaN"]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(max_value=-1),
))
def test_bad_timestamp(item: dict[str, Any], ts: Any) -> None:
    item["ts"] = ts
    assert rejection(item).reason is Reason.BAD_TIMESTAMP


@FAST
@given(valid_readings(), st.integers(NOW_MS + SKEW_MS + 1, NOW_MS * 1000))
def test_future_timestamp(item: dict[str, Any], ts: int) -> None:
    as_text = ts % 2 == 0 and ts < 253_402_300_799_000  # datetime ends at year 9999
    item["ts"] = datetime.fromtimestamp(ts / 1000, UTC).isoformat() if as_text else ts
    assume(to_epoch_ms(item["ts"]) > NOW_MS + SKEW_MS)
    assert rejection(item).reason is Reason.FUTURE_TIMESTAMP


def test_timestamp_at_the_skew_limit_is_accepted() -> None:
    item = {"machine_id": "p", "machine_type": "pump", "ts": NOW_MS + SKEW_MS, "values": {"current": 1.0}}
    assert isinstance(VALIDATOR.check(item, NOW_MS), dict)
    item["ts"] = (datetime.fromtimestamp(NOW_MS / 1000, UTC) + timedelta(minutes=6)).isoformat()
    assert rejection(item).reason is Reason.FUTURE_TIMESTAMP


@FAST
@given(valid_readings(), st.one_of(st.just({}), st.none(), st.lists(st.floats(), max_size=3), st.text(),
                                   st.integers()))
def test_invalid_values(item: dict[str, Any], values: Any) -> None:
    item["values"] = values
    assert rejection(item).reason is Reason.INVALID_VALUES


@FAST
@given(valid_readings(), st.text(min_size=1, max_size=20), st.floats(0, 1))
def test_unknown_sensor(item: dict[str, Any], name: str, value: float) -> None:
    assume(name not in PLANT.machine_types[item["machine_type"]].sensors)
    item["values"][name] = value
    assert rejection(item).reason is Reason.UNKNOWN_SENSOR


@FAST
@given(valid_readings(), st.one_of(st.text(max_size=10), st.booleans(), st.none(), st.lists(st.floats(), max_size=2)))
def test_not_a_number(item: dict[str, Any], value: Any) -> None:
    name = next(iter(item["values"]))
    item["values"][name] = value
    assert rejection(item).reason is Reason.NOT_A_NUMBER


@FAST
@given(valid_readings(), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_not_finite(item: dict[str, Any], value: float) -> None:
    name = next(iter(item["values"]))
    item["values"][name] = value
    assert rejection(item).reason is Reason.NOT_FINITE


@FAST
@given(valid_readings(), st.booleans(), st.floats(1e-6, 1e12), st.booleans())
def test_out_of_range(item: dict[str, Any], above: bool, distance: float, as_int: bool) -> None:
    name = next(iter(item["values"]))
    sensor = PLANT.machine_types[item["machine_type"]].sensors[name]
    value = sensor.max + distance if above else sensor.min - distance
    if as_int:
        value = math.floor(value) - 1 if not above else math.ceil(value) + 1
    assume(not sensor.min <= value <= sensor.max)
    item["values"][name] = value
    assert rejection(item).reason is Reason.OUT_OF_RANGE


@FAST
@given(json_values)
def test_anything_but_an_object_is_not_a_reading(item: Any) -> None:
    assume(not isinstance(item, dict))
    assert rejection(item).reason is Reason.NOT_AN_OBJECT


# ---- agreement on arbitrary input ------------------------------------------------------------------

@st.composite
def perturbed_readings(draw: st.DrawFn) -> Any:
    """Valid readings with a few fields or sensor values replaced by arbitrary JSON values."""
    item = draw(valid_readings())
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from([*REQUIRED_FIELDS, "site", "extra", "value"]))
        replacement = draw(st.one_of(json_values, st.integers(-(10**20), 10**20), timestamps(-10**6, NOW_MS * 2)))
        if target == "value" and isinstance(item["values"], dict) and item["values"]:
            item["values"][draw(st.sampled_from(sorted(item["values"])))] = replacement
        elif target == "value":
            item["values"] = replacement
        else:
            item[target] = replacement
    return item


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(perturbed_readings(), json_values))
def test_fast_path_accepts_exactly_what_the_spec_accepts(item: Any) -> None:
    result = VALIDATOR.check(item, NOW_MS)
    assert isinstance(result, dict) == reference_accepts(item), (item, result)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, Reason) and result.message
