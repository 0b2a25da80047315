"""The drift benchmark's pure parts: scoring the monitor's windows against the simulator's answer key."""

from __future__ import annotations

from typing import Any

import pytest

from forewarn.bench.drift import (
    DriftBenchOptions,
    active_drift_types,
    combine,
    cost_ratio,
    live_sim_options,
    per_reading_us,
    score_windows,
)

HOUR_MS = 3_600_000
ONSET = 10 * HOUR_MS


def window(n: int, end_ts: int, drifted: dict[str, list[str]] | None = None, judged: bool = True,
           version: str = "1") -> dict[str, Any]:
    drifted = drifted or {}
    types = ("pump", "compressor")
    return {
        "window": n, "model_version": version, "window_start_ts": end_ts - HOUR_MS, "window_end_ts": end_ts,
        "machine_types": {t: {"judged": judged, "share": 0.5 if t in drifted else 0.0} for t in types},
        "conditions": [
            {"condition": "no_reference", "scope": "all", "active": False, "sensors": []},
            *({"condition": "data_drift", "scope": t, "active": t in drifted, "sensors": drifted.get(t, [])}
              for t in types),
            {"condition": "score_drift", "scope": "all", "active": True, "sensors": []},
        ],
    }


def clean_run(windows: int = 10) -> list[dict[str, Any]]:
    return [window(k, (k + 1) * HOUR_MS - 1) for k in range(windows)]


def test_a_clean_run_then_a_detection_in_the_second_window_after_the_onset() -> None:
    windows = [*clean_run(10),
               window(10, ONSET + HOUR_MS - 1),
               window(11, ONSET + 2 * HOUR_MS - 1, {"pump": ["pressure", "temperature"]}),
               window(12, ONSET + 3 * HOUR_MS - 1, {"pump": ["pressure"]})]
    result = score_windows(windows, machine_type="pump", sensors=("temperature", "pressure"), onset_ms=ONSET)
    assert result["detected"] is True
    assert result["clean_windows"] == 10
    assert result["false_alarm_windows"] == 0
    assert result["detection_delay_windows"] == 2
    assert result["detection_delay_s"] == pytest.approx((2 * HOUR_MS - 1) / 1000, abs=0.1)
    assert result["drifted_features_found"] == ["pressure", "temperature"]
    assert result["drifted_features_true"] == ["pressure", "temperature"]
    assert result["sensors_exact"] is True
    assert result["windows_after_onset_detecting"] == 2


def test_drift_on_another_type_is_neither_a_detection_nor_a_false_alarm_after_the_onset() -> None:
    windows = [*clean_run(10), window(10, ONSET + HOUR_MS, {"compressor": ["current"]})]
    result = score_windows(windows, machine_type="pump", sensors=["pressure"], onset_ms=ONSET)
    assert result["detected"] is False
    assert result["detection_delay_s"] is None
    assert result["drifted_features_found"] == []
    assert result["sensors_missed"] == ["pressure"]
    assert result["false_alarm_windows"] == 0
    assert result["other_types_flagged_after_onset"] == ["compressor"]


def test_false_alarms_count_clean_windows_with_drift_on_any_type() -> None:
    windows = clean_run(10)
    windows[3] = window(3, 4 * HOUR_MS - 1, {"compressor": ["current"]})
    windows[7] = window(7, 8 * HOUR_MS - 1, {"pump": ["pressure"], "compressor": ["current"]})
    result = score_windows(windows, machine_type="pump", sensors=["pressure"], onset_ms=ONSET)
    assert result["clean_windows"] == 10
    assert result["false_alarm_windows"] == 2
    assert [a["window"] for a in result["false_alarms"]] == [3, 7]
    assert result["false_alarms"][1]["types"] == ["compressor", "pump"]
    assert result["detected"] is False  # a drift before the onset detects nothing


def test_a_window_ending_exactly_at_the_onset_is_not_clean() -> None:
    result = score_windows([window(0, ONSET - 1), window(1, ONSET, {"pump": ["pressure"]})],
                           machine_type="pump", sensors=["pressure"], onset_ms=ONSET)
    assert result["clean_windows"] == 1
    assert result["detected"] is True
    assert result["detection_delay_s"] == 0.0
    assert result["detection_delay_windows"] == 1


def test_repeated_polls_of_the_same_window_count_once_and_order_does_not_matter() -> None:
    windows = clean_run(5)
    polled = [*reversed(windows), *windows[:3]]
    result = score_windows(polled, machine_type="pump", sensors=["pressure"], onset_ms=ONSET)
    assert result["clean_windows"] == 5


def test_extra_and_missed_sensors_are_named() -> None:
    windows = [window(0, ONSET + 1, {"pump": ["pressure", "vibration"]})]
    result = score_windows(windows, machine_type="pump", sensors=["pressure", "temperature"], onset_ms=ONSET)
    assert result["sensors_exact"] is False
    assert result["sensors_missed"] == ["temperature"]
    assert result["sensors_extra"] == ["vibration"]


def test_unjudged_clean_windows_are_counted() -> None:
    windows = [window(0, HOUR_MS, judged=False), window(1, 2 * HOUR_MS)]
    result = score_windows(windows, machine_type="pump", sensors=["pressure"], onset_ms=ONSET)
    assert result["clean_windows_unjudged"] == 1


def test_score_drift_alone_is_not_a_data_drift() -> None:
    assert active_drift_types(window(0, HOUR_MS)) == []


def test_cost_per_reading_and_ratio() -> None:
    assert per_reading_us(2.0, 1_000_000) == 2.0
    assert per_reading_us(1.0, 0) is None
    assert cost_ratio(1.0, 40.0) == 0.025
    assert cost_ratio(None, 40.0) is None
    assert cost_ratio(1.0, 0.0) is None


def test_combine_needs_every_kind_detected_and_sums_false_alarms() -> None:
    runs: dict[str, dict[str, Any]] = {
        "sensor-offset": {"detected": True, "detection_delay_s": 100.0, "false_alarm_windows": 1, "clean_windows": 50,
                          "monitor_cpu_us_per_reading": 1.0, "pipeline_cpu_us_per_reading": 40.0},
        "regime": {"detected": False, "detection_delay_s": None, "false_alarm_windows": 0, "clean_windows": 50,
                   "monitor_cpu_us_per_reading": 2.0, "pipeline_cpu_us_per_reading": 38.0},
    }
    result = combine(runs)
    assert result["detected"] is False
    assert result["detection_delay_s"] is None  # one kind was never detected
    assert result["false_alarm_windows"] == 1
    assert result["clean_windows"] == 100
    assert result["monitor_cpu_us_per_reading"] == 2.0


def test_the_live_run_is_the_same_fleet_with_the_drift_after_the_clean_phase() -> None:
    options = DriftBenchOptions(machines=12, clean_windows=50, drift_windows=6, seed=4)
    sim = live_sim_options(options, "sensor-offset", start_ms=1_000 * HOUR_MS)
    assert sim.fleet_seed == 4 and sim.seed == 5
    assert sim.drift is not None and sim.drift.kind == "sensor-offset"
    assert sim.drift.at_ms == 50 * HOUR_MS
    assert sim.duration_ms == 56 * HOUR_MS
    assert options.window_s == pytest.approx(3600 / options.speedup)


def test_windows_that_sampled_nothing_are_left_out() -> None:
    empty = {**window(20, ONSET + 30 * HOUR_MS), "vectors_sampled": 0}
    result = score_windows([*clean_run(3), {**window(3, ONSET + 1), "vectors_sampled": 5}, empty],
                           machine_type="pump", sensors=["pressure"], onset_ms=ONSET)
    assert result["windows_after_onset"] == 1
