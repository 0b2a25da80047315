"""Labels on hand-made histories: horizon in time and in cycles, maintenance, feedback, censoring, RUL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forewarn.etl.labels import LABEL, events_by_machine, label, reset_rows
from forewarn.etl.spec import BuildSpec, Horizon

MIN = 60_000
HOUR = 60 * MIN


def rows(minutes: range, machine: str = "m") -> pd.DataFrame:
    return pd.DataFrame({"machine_id": machine, "ts": [m * MIN for m in minutes]})


def events(*items: tuple[str, int, int | None]) -> dict:
    frame = pd.DataFrame([{"machine_id": "m", "kind": k, "ts": t * MIN, "end_ts": None if e is None else e * MIN}
                          for k, t, e in items], columns=["machine_id", "kind", "ts", "end_ts"])
    return events_by_machine(frame)


def labels_of(out: pd.DataFrame) -> list:
    return [None if pd.isna(v) else int(v) for v in out[LABEL]]


def test_rows_within_the_horizon_before_a_failure_are_positive_and_maintenance_starts_a_new_life() -> None:
    frame = rows(range(0, 200, 10))  # readings every 10 min until 190
    spec = BuildSpec(horizon=Horizon.parse("30m"), rul_cap=1.0)
    out = label(frame, events(("failure", 100, None), ("maintenance", 120, None)), spec, data_end_ts=190 * MIN)
    by_minute = dict(zip(frame["ts"] // MIN, labels_of(out), strict=True))
    assert [m for m, v in by_minute.items() if v == 1] == [70, 80, 90, 100]
    assert by_minute[60] == 0 and by_minute[0] == 0
    assert by_minute[110] == 0  # the failed machine waits for its repair: its life ends with no failure
    assert by_minute[120] == 0 and by_minute[150] == 0  # after maintenance: new life, 30 m observed clean
    assert by_minute[170] is None and by_minute[190] is None  # less than 30 m observed: censored
    sources = dict(zip(frame["ts"] // MIN, out["label_source"], strict=True))
    assert sources[80] == "failure" and sources[110] == "maintenance" and sources[170] == "censored"
    rul = dict(zip(frame["ts"] // MIN, out["rul"], strict=True))
    assert rul[100] == 0.0 and rul[70] == pytest.approx(0.5) and rul[0] == 1.0  # hours, capped at 1
    assert np.isnan(rul[110])  # no failure in this life and only 10 min of it known: below the cap, unknown
    assert out["time_to_failure_ms"].tolist()[:2] == [100 * MIN, 90 * MIN]


def test_maintenance_before_a_failure_makes_the_rows_before_it_negative() -> None:
    frame = rows(range(0, 100, 10))
    out = label(frame, events(("maintenance", 50, None), ("failure", 60, None)),
                BuildSpec(horizon=Horizon.parse("30m")), data_end_ts=90 * MIN)
    # Before the maintenance the life ends without failure; the failure belongs to the next life.
    assert labels_of(out) == [0, 0, 0, 0, 0, 1, 1, None, None, None]


def test_horizon_in_cycles_counts_the_machine_own_readings() -> None:
    frame = rows(range(0, 10))  # ten readings, the last at the failure
    spec = BuildSpec(horizon=Horizon.parse("3cycles"), rul_cap=5)
    out = label(frame, events(("failure", 9, None)), spec, data_end_ts=9 * MIN)
    assert labels_of(out) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert out["rul"].tolist() == [5, 5, 5, 5, 5, 4, 3, 2, 1, 0]


def test_feedback_confirmed_failure_and_false_alarm_label_rows() -> None:
    frame = rows(range(0, 100, 10))
    spec = BuildSpec(horizon=Horizon.parse("20m"))
    before = label(frame, events(), spec, data_end_ts=90 * MIN)
    assert labels_of(before)[-2:] == [None, None]
    after = label(frame, events(("confirmed_failure", 40, None), ("false_alarm", 70, 90)), spec, data_end_ts=90 * MIN)
    assert labels_of(after) == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert after["label_source"].tolist()[2] == "confirmed_failure"
    assert after["label_source"].tolist()[-3:] == ["false_alarm"] * 3


def test_a_false_alarm_does_not_hide_a_recorded_failure() -> None:
    frame = rows(range(0, 60, 10))
    out = label(frame, events(("failure", 50, None), ("false_alarm", 0, 50)), BuildSpec(horizon=Horizon.parse("15m")),
                data_end_ts=50 * MIN)
    assert labels_of(out) == [0, 0, 0, 0, 1, 1]


def test_ground_truth_wins_a_tie_with_feedback() -> None:
    frame = rows(range(0, 30, 10))
    out = label(frame, events(("confirmed_failure", 20, None), ("failure", 20, None)),
                BuildSpec(horizon=Horizon.parse("1h")), data_end_ts=20 * MIN)
    assert set(out["label_source"]) == {"failure"}


def test_reset_rows_mark_the_first_reading_at_or_after_each_maintenance_in_arrival_order() -> None:
    arrival_ts = np.array([1, 2, 5, 4, 6, 9, 10])
    assert reset_rows(arrival_ts, np.array([3, 8, 20])).tolist() == [False, False, True, False, False, True, False]


@pytest.mark.parametrize(("text", "ms", "cycles"), [("24h", 24 * HOUR, None), ("30cycles", None, 30),
                                                    ("5 readings", None, 5), ("90m", 90 * MIN, None)])
def test_horizon_parsing(text: str, ms: int | None, cycles: int | None) -> None:
    horizon = Horizon.parse(text)
    assert (horizon.ms, horizon.cycles) == (ms, cycles)


def test_a_bad_horizon_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="30cycles"):
        Horizon.parse("soon")
