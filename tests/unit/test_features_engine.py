"""Engine properties: batching never changes a bit, offline equals online, snapshots resume exactly,
memory is bounded, and long windows of huge values keep their precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.unit.test_features import (
    LATENESS_MS,
    SMALL,
    _stream,
    assert_matches_reference,
    reference,
    run_engine,
)

from forewarn.assets import load_asset_config
from forewarn.features import (
    ACCEPTED_COLUMN,
    DEDUP_DEPTH,
    FEATURE_SET_VERSION,
    FeatureEngine,
    compute_frame,
    feature_names,
    state_bytes,
    state_from_bytes,
    state_to_bytes,
)


@pytest.fixture(scope="module")
def pump():
    return load_asset_config("plant").machine_type("pump")


def _as_matrix(rows: list[np.ndarray | None], width: int) -> np.ndarray:
    return np.array([np.full(width, np.inf) if r is None else r for r in rows])


def test_batching_does_not_change_a_single_bit() -> None:
    events = _stream(np.random.default_rng(1), 500, machines=4)
    width = len(feature_names(SMALL))
    whole, _ = run_engine(SMALL, LATENESS_MS, events)
    for sizes in ([1], [7, 1, 3], [64], [2, 50]):
        chunked, _ = run_engine(SMALL, LATENESS_MS, events, batch_sizes=sizes)
        assert np.array_equal(_as_matrix(whole, width), _as_matrix(chunked, width), equal_nan=True), sizes


def test_compute_frame_equals_update_batch_exactly() -> None:
    events = _stream(np.random.default_rng(2), 400, machines=3)
    frame_in = pd.DataFrame(
        {
            "machine_id": [e[0] for e in events],
            "ts": [e[1] for e in events],
            "a": [e[2][0] for e in events],
            "b": [e[2][1] for e in events],
            "maintenance": [e[3] for e in events],
        },
        index=pd.RangeIndex(100, 100 + len(events)),
    )
    frame = compute_frame(frame_in, SMALL, LATENESS_MS, reset_col="maintenance", chunk_size=37)
    online, _ = run_engine(SMALL, LATENESS_MS, events)
    assert list(frame.columns) == [*feature_names(SMALL), ACCEPTED_COLUMN]
    assert frame.index.equals(frame_in.index)
    assert frame[ACCEPTED_COLUMN].tolist() == [r is not None for r in online]
    accepted = frame[frame[ACCEPTED_COLUMN]].drop(columns=ACCEPTED_COLUMN).to_numpy()
    assert np.array_equal(accepted, np.array([r for r in online if r is not None]), equal_nan=True)
    assert frame[~frame[ACCEPTED_COLUMN]].drop(columns=ACCEPTED_COLUMN).isna().all().all()


def test_compute_frame_reads_datetimes_and_names_missing_columns() -> None:
    ts = pd.date_range("2026-01-01", periods=5, freq="1s", tz="UTC")
    frame_in = pd.DataFrame({"machine_id": "m", "ts": ts, "a": np.arange(5.0), "b": 1.0})
    frame = compute_frame(frame_in, SMALL)
    assert frame["a__n5__slope"].iloc[-1] == pytest.approx(1.0)
    assert frame["gap_ms"].iloc[-1] == 1000
    with pytest.raises(KeyError, match="'b'"):
        compute_frame(frame_in.drop(columns="b"), SMALL)


def test_export_import_resumes_identically() -> None:
    events = _stream(np.random.default_rng(3), 400, machines=3)
    width = len(feature_names(SMALL))
    full, _ = run_engine(SMALL, LATENESS_MS, events)
    first, engine = run_engine(SMALL, LATENESS_MS, events[:230])
    blob = state_to_bytes(engine.export_state())
    restored = FeatureEngine(SMALL, LATENESS_MS)
    restored.import_state(state_from_bytes(blob))
    rest = events[230:]
    result = restored.update_batch(
        [e[0] for e in rest], np.array([e[1] for e in rest]), np.array([e[2] for e in rest]),
        np.array([e[3] for e in rest]),
    )
    rows = iter(result.features)
    resumed = first + [next(rows) if ok else None for ok in result.accepted]
    assert np.array_equal(_as_matrix(full, width), _as_matrix(resumed, width), equal_nan=True)


def test_import_rejects_state_of_another_layout(pump) -> None:
    engine = FeatureEngine(SMALL)
    engine.update_batch(["m"], np.array([1_700_000_000_000]), np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="another layout"):
        FeatureEngine(pump).import_state(engine.export_state())
    assert str(engine.export_state()["signature"]).startswith(f"v{FEATURE_SET_VERSION}|")
    with pytest.raises(KeyError):
        engine.export_state(["unknown"])


def test_reset_method_equals_reset_flag() -> None:
    events = _stream(np.random.default_rng(4), 200, machines=2)
    events = [(m, t, v, False) for m, t, v, _ in events]
    flagged = [*events[:120], (events[120][0], *events[120][1:3], True), *events[121:]]
    expected, _ = run_engine(SMALL, LATENESS_MS, flagged)
    _, engine = run_engine(SMALL, LATENESS_MS, events[:120])
    engine.reset([events[120][0], "never-seen"])
    rest = events[120:]
    result = engine.update_batch([e[0] for e in rest], np.array([e[1] for e in rest]),
                                 np.array([e[2] for e in rest]))
    want = np.array([r for r in expected[120:] if r is not None])
    assert np.array_equal(result.features, want, equal_nan=True)


def test_memory_bound_of_the_plant_pump(pump) -> None:
    assert state_bytes(pump) <= 5000  # the target: 50 MB per 10,000 machines
    s, wt, w, b, nmax = 5, 3, 4, 4, 10
    ring = max(DEDUP_DEPTH, nmax)
    assert state_bytes(pump) == 8 * (8 * wt * b * s + 2 * wt * b + nmax * s + ring + w * s + 5 * s + 6)
    engine = FeatureEngine(pump, 30_000, initial_capacity=1)
    rng = np.random.default_rng(5)
    ids = [f"m{i}" for i in range(50)]
    for step in range(300):  # state per machine does not depend on how many readings it has seen
        ts = np.full(50, 1_700_000_000_000 + step * 20_000)
        engine.update_batch(ids, ts, rng.normal(size=(50, 5)))
    assert engine._state.shape[1] * 8 == state_bytes(pump)
    assert len(engine.export_state()["rows"][0]) * 8 == state_bytes(pump)


def test_plant_pump_one_hour_at_1hz_matches_reference(pump) -> None:
    rng = np.random.default_rng(6)
    n = 4000
    ts = 1_700_000_000_000 + np.arange(n) * 1000 + rng.integers(-200, 200, n)
    values = rng.normal([60, 3, 8, 2900, 40], [1, 0.3, 0.5, 20, 2], (n, 5))
    values[rng.random((n, 5)) < 0.01] = np.nan
    events = [("p", int(t), v, False) for t, v in zip(ts, values, strict=True)]
    names = feature_names(pump)
    got, _ = run_engine(pump, 30_000, events)
    # A sample of rows (the reference is slow): first readings, around window lengths, after an hour.
    sample = {0, 1, 49, 50, 59, 61, 599, 601, 3599, 3601, n - 1}
    expected = reference(pump, 30_000, events, rows_wanted=sample)
    for i in sorted(sample):
        w = np.array([expected[i][k] for k in names], dtype=float)
        assert np.allclose(got[i], w, rtol=1e-9, atol=1e-9, equal_nan=True), i


def test_no_catastrophic_cancellation_at_1e9() -> None:
    """Noise of 1e-3 on 1e9 is 1e-12 relative: naive sums of squares would return garbage."""
    rng = np.random.default_rng(9)
    n = 1200
    ts = 1_700_000_000_000 + np.arange(n) * 1000
    noise = rng.normal(0.0, 1e-3, (n, 2))
    values = 1e9 + noise + np.array([0.0, 1e-4]) * np.arange(n)[:, None]  # sensor b trends 1e-4 per s
    events = [("m", int(t), v, False) for t, v in zip(ts, values, strict=True)]
    got, _ = run_engine(SMALL, 0, events)
    names = feature_names(SMALL)
    last = got[-1]
    small = values - 1e9  # exact: the small digits, for a precise reference
    baseline = small[: SMALL.baseline_readings].mean(axis=0)
    for window, count in (("10s", 10), ("4s", 4), ("n5", 5), ("n3", 3)):
        sel = small[-count:]
        for j, sensor in enumerate("ab"):
            name = f"{sensor}__{window}__"
            assert last[names.index(name + "std")] == pytest.approx(sel[:, j].std(), rel=1e-7), name
            delta = last[names.index(name + "delta_baseline")]
            assert delta == pytest.approx(sel[:, j].mean() - baseline[j], rel=1e-9), name
    t = (ts[-10:] - ts[-10]).astype(float) / 1000
    want = np.polyfit(t, small[-10:, 1], 1)[0]
    assert last[names.index("b__10s__slope")] == pytest.approx(want, rel=1e-6)
    assert_matches_reference(SMALL, 0, events[-200:], rtol=1e-6, atol=1e-6)


def test_rejects_malformed_input() -> None:
    engine = FeatureEngine(SMALL)
    with pytest.raises(ValueError, match="shape"):
        engine.update_batch(["m"], np.array([1]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="whole epoch milliseconds"):
        engine.update_batch(["m"], np.array([1.5]), np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="finite"):
        engine.update_batch(["m"], np.array([1]), np.array([[np.inf, 2.0]]))
    empty = engine.update_batch([], np.array([], dtype=np.int64), np.empty((0, 2)))
    assert empty.features.shape == (0, len(feature_names(SMALL)))


def test_long_count_windows_are_batching_invariant_too() -> None:
    """cmapss has count windows up to 30 readings and 24 sensors: sums over many readings must not
    depend on how many machines share a batch."""
    turbofan = load_asset_config("cmapss").machine_type("turbofan")
    events = _stream(np.random.default_rng(13), 240, machines=3, sensors=24, interval_ms=3_600_000)
    width = len(feature_names(turbofan))
    whole, _ = run_engine(turbofan, 0, events)
    single, _ = run_engine(turbofan, 0, events, batch_sizes=[1])
    assert np.array_equal(_as_matrix(whole, width), _as_matrix(single, width), equal_nan=True)


def test_discard_forgets_a_machine_and_reuses_its_slot() -> None:
    engine = FeatureEngine(SMALL, LATENESS_MS, initial_capacity=2)
    t0 = 1_700_000_000_000
    first = engine.update_batch(["a", "b"], np.array([t0, t0]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    engine.discard(["a", "unknown"])
    assert engine.machine_ids == ["b"] and len(engine) == 1
    with pytest.raises(KeyError):
        engine.export_state(["a"])
    again = engine.update_batch(["c", "a"], np.array([t0, t0]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert again.accepted.all()  # "a" starts from nothing: its old reading is no duplicate
    assert np.array_equal(again.features[0], first.features[0], equal_nan=True)  # "c" got a clean slot
    assert engine._state.shape[0] == 4 and sorted(engine.machine_ids) == ["a", "b", "c"]
