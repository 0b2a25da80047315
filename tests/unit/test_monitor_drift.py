"""The monitor's drift judgement: reference, thresholds from clean history, windows, events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forewarn.assets import load_asset_config
from forewarn.monitoring import drift
from forewarn.monitoring.monitor import ModelMonitor, MonitorConfig, _Reservoir
from forewarn.monitoring.reference import Reference, build_reference, monitored_features

SENSORS = ("temperature", "vibration", "pressure")
STATS = ("10m__mean", "10m__std", "1h__delta_baseline")
NAMES = [f"{s}__{stat}" for s in SENSORS for stat in STATS]


def plant(rows: int, seed: int, shift: dict[str, float] | None = None, t0: int = 0) -> pd.DataFrame:
    """Rows of a slowly varying, noisy fleet (AR(1) per feature), ts increasing."""
    rng = np.random.default_rng(seed)
    data = {}
    for name in NAMES:
        noise = rng.normal(size=rows)
        series = np.empty(rows)
        series[0] = noise[0]
        for k in range(1, rows):
            series[k] = 0.6 * series[k - 1] + 0.8 * noise[k]
        data[name] = 10.0 + series + (shift or {}).get(name.split("__")[0], 0.0)
    frame = pd.DataFrame(data)
    frame.insert(0, "ts", t0 + np.arange(rows) * 60_000)
    frame.insert(0, "machine_type", "pump")
    return frame


@pytest.fixture(scope="module")
def reference() -> Reference:
    history = plant(12_000, seed=1)
    return build_reference(history, features_by_type={"pump": NAMES},
                           holdout_prob=np.random.default_rng(2).beta(1, 8, 3000),
                           holdout={"precision": 0.6, "recall": 0.8}, horizon="12h", seed=0)


def test_monitored_features_are_level_spread_and_relative_shift_of_measured_sensors() -> None:
    config = load_asset_config("plant")
    names = monitored_features(config.machine_types["pump"])
    assert "vibration__10m__mean" in names and "vibration__10m__std" in names
    assert "vibration__1h__delta_baseline" in names
    assert len(names) == 3 * len(config.machine_types["pump"].sensor_names)


def test_thresholds_are_never_below_the_floor_and_grow_with_the_reference_own_variation(
        reference: Reference) -> None:
    thresholds = reference.thresholds["pump"]
    assert set(thresholds) == set(NAMES)
    assert min(thresholds.values()) >= drift.DEFAULT_THRESHOLD
    assert reference.horizon_ms == 12 * 3_600_000
    quiet = np.random.default_rng(0).normal(size=5000)
    assert drift.null_threshold(quiet, [quiet[k * 500:(k + 1) * 500] for k in range(10)]) < 0.3
    wandering = np.concatenate([np.random.default_rng(k).normal(k, 1, 500) for k in range(10)])
    blocks = [wandering[k * 500:(k + 1) * 500] for k in range(10)]
    assert drift.null_threshold(wandering, blocks) > 0.5


def test_reference_round_trips_through_its_folder(reference: Reference, tmp_path) -> None:
    reference.save(tmp_path)
    loaded = Reference.load(tmp_path, model_version="7")
    assert loaded.model_version == "7"
    assert loaded.thresholds == reference.thresholds
    pd.testing.assert_frame_equal(loaded.features["pump"], reference.features["pump"])
    np.testing.assert_array_equal(loaded.scores, reference.scores)


def _window(monitor: ModelMonitor, frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    for start in range(0, len(frame), 100):
        part = frame.iloc[start:start + 100]
        monitor.add_vectors("pump", ["gap_ms", *NAMES], np.column_stack([np.zeros(len(part)), part[NAMES]]),
                            part["ts"].to_numpy())
    return monitor.close_window(now_ms=1)


def test_clean_windows_raise_no_drift_and_a_shifted_sensor_is_named(reference: Reference) -> None:
    monitor = ModelMonitor(reference, "3", MonitorConfig(model_name="m", min_rows=200, max_rows=600))
    for k in range(20):
        result = _window(monitor, plant(400, seed=100 + k))
        (event,) = [e for e in result.events if e.condition == "data_drift"]
        assert not event.active, event.summary
    drifted = _window(monitor, plant(400, seed=999, shift={"vibration": 2.0}))
    (event,) = [e for e in drifted.events if e.condition == "data_drift"]
    assert event.active and event.scope == "pump"
    assert event.sensors == ["vibration"]
    assert "vibration" in event.summary
    assert event.window == 20 and event.model_version == "3"


def test_a_type_with_too_few_rows_is_not_judged(reference: Reference) -> None:
    monitor = ModelMonitor(reference, "3", MonitorConfig(model_name="m", min_rows=500))
    result = _window(monitor, plant(100, seed=5, shift={"vibration": 5.0}))
    assert [e for e in result.events if e.condition == "data_drift"] == []
    assert result.summary["machine_types"]["pump"]["judged"] is False


def test_score_drift_is_judged_against_the_holdout_distribution(reference: Reference) -> None:
    monitor = ModelMonitor(reference, "3", MonitorConfig(model_name="m", min_scores=200))
    monitor.add_scores(np.random.default_rng(3).beta(1, 8, 1000), np.arange(1000))
    (clean,) = [e for e in monitor.close_window(1).events if e.condition == "score_drift"]
    monitor.add_scores(np.random.default_rng(4).beta(4, 2, 1000), np.arange(1000))
    (moved,) = [e for e in monitor.close_window(2).events if e.condition == "score_drift"]
    assert not clean.active and moved.active


def test_without_a_reference_nothing_is_judged_and_the_event_says_what_to_do() -> None:
    monitor = ModelMonitor(None, "1", MonitorConfig(model_name="m"))
    monitor.add_vectors("pump", NAMES, np.ones((10, len(NAMES))), np.arange(10))
    (event,) = monitor.close_window(5).events
    assert event.condition == "no_reference" and event.active
    assert "forewarn train" in event.summary


def test_event_ids_are_stable_per_window_and_condition(reference: Reference) -> None:
    one = ModelMonitor(reference, "3", MonitorConfig(model_name="m"))
    two = ModelMonitor(reference, "3", MonitorConfig(model_name="m"))
    frame = plant(400, seed=8)
    assert [e.event_id for e in _window(one, frame).events] == [e.event_id for e in _window(two, frame).events]
    assert len({e.event_id for e in _window(one, frame).events} | {e.event_id for e in _window(two, frame).events}) \
        == len(_window(ModelMonitor(reference, "3", MonitorConfig(model_name="m")), frame).events)


def test_the_reservoir_is_bounded_and_uniform() -> None:
    reservoir = _Reservoir(1000, ["x"], np.random.default_rng(0))
    for start in range(0, 100_000, 500):
        reservoir.offer(np.arange(start, start + 500, dtype=np.float64).reshape(-1, 1))
    values = reservoir.rows[:, 0]
    assert len(values) == 1000 and reservoir.seen == 100_000
    # Uniform over the stream: each tenth of it holds about a tenth of the sample.
    counts = np.histogram(values, bins=10, range=(0, 100_000))[0]
    assert counts.min() > 60 and counts.max() < 140


def test_machines_at_risk_are_left_out_while_a_minority_and_kept_when_most_of_a_type_is(
        reference: Reference) -> None:
    monitor = ModelMonitor(reference, "3", MonitorConfig(model_name="m", min_rows=100))
    clean, degrading = plant(300, seed=20), plant(100, seed=21, shift={"vibration": 6.0})
    ids = [f"p{k % 10}" for k in range(300)]
    monitor.note_risk(["p9"], np.array([0.99]))
    matrix = lambda f: np.column_stack([np.zeros(len(f)), f[NAMES]])  # noqa: E731
    monitor.add_vectors("pump", ["gap_ms", *NAMES], matrix(clean), clean["ts"].to_numpy(), ids)
    monitor.add_vectors("pump", ["gap_ms", *NAMES], matrix(degrading), degrading["ts"].to_numpy(), ["p9"] * 100)
    result = monitor.close_window(1)
    assert result.summary["rows_of_machines_at_risk_left_out"] == 130
    assert not next(e for e in result.events if e.condition == "data_drift").active
    # Every machine at risk: a change of the plant, not degradation; nothing is left out and it drifts.
    monitor.note_risk([f"p{k}" for k in range(10)], np.full(10, 0.99))
    shifted = plant(300, seed=22, shift={"vibration": 6.0})
    monitor.add_vectors("pump", ["gap_ms", *NAMES], matrix(shifted), shifted["ts"].to_numpy(), ids)
    result = monitor.close_window(2)
    assert result.summary["rows_of_machines_at_risk_left_out"] == 0
    assert next(e for e in result.events if e.condition == "data_drift").active
