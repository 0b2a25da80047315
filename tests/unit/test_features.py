"""Every feature agrees with a direct, slow numpy computation over exactly the readings its window covers.

The reference below re-implements the documented semantics reading by reading, with plain Python lists,
so the engine's buckets, rings and merges are checked against their definition, not against themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.assets import MachineType, load_asset_config
from forewarn.features import BUCKETS, DEDUP_DEPTH, WINDOW_STATS, FeatureEngine, feature_names

LATENESS_MS = 3000
SMALL = MachineType(
    sensors={"a": {"unit": "u", "min": -1e12, "max": 1e12}, "b": {"unit": "u", "min": -1e12, "max": 1e12}},
    sampling_interval="1s",
    time_windows=["4s", "10s"],
    count_windows=[3, 5],
    baseline_readings=4,
)


@dataclass
class _Machine:
    max_ts: int | None = None
    reset_ts: float = -math.inf
    recent: list[int] = field(default_factory=list)  # accepted timestamps, never cleared
    late: int = 0
    dups: int = 0
    readings: list[tuple[int, np.ndarray]] = field(default_factory=list)  # since reset, arrival order
    ewma: dict[tuple[str, int], float] = field(default_factory=dict)  # (window, sensor) -> value
    last_t: dict[int, int] = field(default_factory=dict)


def _slope_per_s(ts: np.ndarray, xs: np.ndarray) -> float:
    if len(xs) < 2:
        return math.nan
    t = (ts - ts[0]).astype(float)
    tc, xc = t - t.mean(), xs - xs.mean()
    return float((tc * xc).sum() / (tc * tc).sum() * 1000.0)


def reference(machine_type: MachineType, lateness_ms: int, events: list[tuple],
              rows_wanted: set[int] | None = None) -> list[dict | None]:
    """events: (machine, ts, values[S], reset_before). One dict of features per event, None if dropped
    (or not in ``rows_wanted``, when given: the features are the slow part)."""
    sensors = machine_type.sensor_names
    interval = machine_type.sampling_interval_ms
    machines: dict[str, _Machine] = {}
    rows: list[dict | None] = []
    for i, (mid, ts, values, reset) in enumerate(events):
        mach = machines.setdefault(mid, _Machine())
        if reset:
            mach.reset_ts = -math.inf if mach.max_ts is None else mach.max_ts
            mach.readings, mach.ewma, mach.last_t = [], {}, {}
        if (mach.max_ts is not None and ts < mach.max_ts - lateness_ms) or ts <= mach.reset_ts:
            mach.late += 1
            rows.append(None)
            continue
        if ts in mach.recent[-max([DEDUP_DEPTH, *machine_type.count_windows]):]:
            mach.dups += 1
            rows.append(None)
            continue
        gap = math.nan if mach.max_ts is None else ts - mach.max_ts
        mach.max_ts = ts if mach.max_ts is None else max(mach.max_ts, ts)
        mach.recent.append(ts)
        mach.readings.append((ts, values))
        for j, _ in enumerate(sensors):
            x = values[j]
            if math.isnan(x):
                continue
            for w in machine_type.windows:
                key = (w.name, j)
                if w.is_time:
                    if ts <= mach.last_t.get(j, -math.inf):
                        continue
                    prev = mach.ewma.get(key)
                    alpha = -math.expm1(-(ts - mach.last_t[j]) / (w.duration_ms / 2)) if prev is not None else 1
                else:
                    prev = mach.ewma.get(key)
                    alpha = 2 / (w.count + 1)
                mach.ewma[key] = x if prev is None else prev + alpha * (x - prev)
            if ts > mach.last_t.get(j, -math.inf):
                mach.last_t[j] = ts
        if rows_wanted is not None and i not in rows_wanted:
            rows.append(None)
            continue
        row = {"gap_ms": gap, "late_dropped": mach.late, "duplicates": mach.dups,
               "readings_since_reset": len(mach.readings)}
        all_ts = np.array([r[0] for r in mach.readings])
        all_x = np.array([r[1] for r in mach.readings])
        base = all_x[: machine_type.baseline_readings]
        for j, s in enumerate(sensors):
            present = ~np.isnan(all_x[:, j])
            row[f"{s}__last"] = all_x[present, j][np.argmax(all_ts[present])] if present.any() else math.nan
            bvals = base[~np.isnan(base[:, j]), j]
            row[f"{s}__baseline"] = bvals.mean() if len(bvals) else math.nan
        for w in machine_type.windows:
            if w.is_time:
                width = -(-w.duration_ms // BUCKETS)
                top = mach.max_ts // width
                sel = all_ts // width > top - BUCKETS
                start = max((top - BUCKETS + 1) * width, int(all_ts.min()))
                span = mach.max_ts - start
            else:
                sel = np.zeros(len(all_ts), dtype=bool)
                sel[-w.count:] = True
                span = int(all_ts[sel].max() - all_ts[sel].min())
            count = int(sel.sum())
            expected = max(count, span // interval + 1)
            row[f"readings__{w.name}__count"] = count
            for j, s in enumerate(sensors):
                keep = sel & ~np.isnan(all_x[:, j])
                xs, tss = all_x[keep, j], all_ts[keep]
                empty = len(xs) == 0
                name = f"{s}__{w.name}__"
                row[name + "mean"] = math.nan if empty else xs.mean()
                row[name + "std"] = math.nan if empty else xs.std()
                row[name + "min"] = math.nan if empty else xs.min()
                row[name + "max"] = math.nan if empty else xs.max()
                row[name + "slope"] = _slope_per_s(tss, xs)
                row[name + "ewma"] = mach.ewma.get((w.name, j), math.nan)
                row[name + "delta_baseline"] = row[name + "mean"] - row[f"{s}__baseline"]
                row[name + "missing_ratio"] = 1 - len(xs) / expected
        rows.append(row)
    return rows


def run_engine(machine_type: MachineType, lateness_ms: int, events: list[tuple],
               batch_sizes: list[int] | None = None) -> tuple[list[np.ndarray | None], FeatureEngine]:
    engine = FeatureEngine(machine_type, lateness_ms, initial_capacity=1)
    out: list[np.ndarray | None] = []
    sizes = batch_sizes or [len(events)]
    pos = 0
    while pos < len(events):
        chunk = events[pos : pos + sizes[len(out) % len(sizes)] if batch_sizes else len(events)]
        pos += len(chunk)
        result = engine.update_batch(
            [e[0] for e in chunk],
            np.array([e[1] for e in chunk], dtype=np.int64),
            np.array([e[2] for e in chunk]).reshape(len(chunk), len(machine_type.sensor_names)),
            np.array([e[3] for e in chunk]),
        )
        rows = iter(result.features)
        out += [next(rows) if ok else None for ok in result.accepted]
    return out, engine


def assert_matches_reference(machine_type: MachineType, lateness_ms: int, events: list[tuple],
                             rtol: float = 1e-9, atol: float = 1e-9) -> None:
    names = feature_names(machine_type)
    expected = reference(machine_type, lateness_ms, events)
    got, _ = run_engine(machine_type, lateness_ms, events)
    assert [g is None for g in got] == [e is None for e in expected], "acceptance differs"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if e is None:
            continue
        want = np.array([e[n] for n in names], dtype=float)
        bad = ~np.isclose(g, want, rtol=rtol, atol=atol, equal_nan=True)
        assert not bad.any(), (
            f"event {i} {events[i][:2]}: "
            + ", ".join(f"{names[k]}: got {g[k]!r} want {want[k]!r}" for k in np.flatnonzero(bad)[:6])
        )


def _stream(rng: np.random.Generator, n: int, machines: int = 3, missing: float = 0.1,
            disorder: bool = True, sensors: int = 2, interval_ms: int = 1000) -> list[tuple]:
    """Readings about one interval apart per machine; with disorder also repeats, bursts, long gaps,
    readings late by less and by more than LATENESS_MS (at 1 s), and occasional maintenance resets."""
    clocks = dict.fromkeys(range(machines), 1_700_000_000_000)
    scale = interval_ms / 1000
    events = []
    for _ in range(n):
        m = int(rng.integers(machines))
        if disorder:
            clocks[m] += int(scale * rng.choice([1000, 1000, 1000, 250, 3000, 0, 20_000]))
            ts = clocks[m] - int(scale * rng.choice([0, 0, 0, 0, 500, 2500, 4000]))
        else:
            clocks[m] += interval_ms
            ts = clocks[m]
        values = rng.normal(50.0, 5.0, sensors)
        values[rng.random(sensors) < missing] = np.nan
        events.append((f"m{m}", ts, values, bool(disorder and rng.random() < 0.02)))
    return events


def test_random_streams_with_disorder_duplicates_gaps_and_resets() -> None:
    rng = np.random.default_rng(7)
    events = _stream(rng, 600)
    assert_matches_reference(SMALL, LATENESS_MS, events)


@pytest.mark.parametrize(("config", "type_name"), [("plant", "compressor"), ("cmapss", "turbofan"), ("ai4i", "L")])
def test_shipped_machine_types_match_reference(config: str, type_name: str) -> None:
    assets = load_asset_config(config)
    machine_type = assets.machine_type(type_name)
    events = _stream(np.random.default_rng(11), 150, sensors=len(machine_type.sensor_names),
                     interval_ms=machine_type.sampling_interval_ms)
    assert_matches_reference(machine_type, assets.allowed_lateness_ms, events)


def test_single_sensor_time_window_only() -> None:
    machine_type = MachineType(sensors={"x": {"unit": "u", "min": 0, "max": 1}}, time_windows=["3s"])
    events = _stream(np.random.default_rng(12), 200, sensors=1)
    assert_matches_reference(machine_type, LATENESS_MS, events)


def test_in_order_stream_without_missing_values() -> None:
    rng = np.random.default_rng(8)
    assert_matches_reference(SMALL, LATENESS_MS, _stream(rng, 300, missing=0.0, disorder=False))


event_lists = st.lists(
    st.tuples(
        st.sampled_from(["p", "q"]),
        st.sampled_from([0, 250, 1000, 1000, 1700, 2500, -700, -2600, -3500, 9000, 31_000]),
        st.lists(st.one_of(st.floats(-1e3, 1e3), st.just(math.nan)), min_size=2, max_size=2),
        st.integers(0, 40),  # 0: maintenance reset just before this reading
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_lists, st.integers(0, 4000))
def test_property_any_stream_matches_reference(raw: list[tuple], lateness_ms: int) -> None:
    clocks = {"p": 1_700_000_000_000, "q": 1_700_000_000_000}
    events = []
    for mid, step, values, reset_roll in raw:
        clocks[mid] += step
        events.append((mid, clocks[mid], np.array(values), reset_roll == 0))
    assert_matches_reference(SMALL, lateness_ms, events, atol=1e-7)


def test_late_and_duplicate_readings_are_counted_and_dropped() -> None:
    t0 = 1_700_000_000_000
    ts = [t0, t0 + 1000, t0 + 1000, t0 - 2000, t0 - 2000, t0 - 5000, t0 + 2000]
    events = [("m", t, np.array([1.0, 2.0]), False) for t in ts]
    got, engine = run_engine(SMALL, LATENESS_MS, events)
    accepted = [g is not None for g in got]
    assert accepted == [True, True, False, True, False, False, True]
    names = feature_names(SMALL)
    last = got[-1]
    assert last[names.index("late_dropped")] == 1
    assert last[names.index("duplicates")] == 2
    assert last[names.index("gap_ms")] == 1000
    assert got[3][names.index("gap_ms")] == -3000  # out of order: negative gap, still accepted


def test_gap_shows_in_gap_ms_and_missing_ratio() -> None:
    t0 = 1_700_000_000_000
    ts = [t0, t0 + 1000, t0 + 2000, t0 + 8000]  # 5 readings missing before the last
    events = [("m", t, np.array([1.0, np.nan]), False) for t in ts]
    got, _ = run_engine(SMALL, LATENESS_MS, events)
    names = feature_names(SMALL)
    row = got[-1]
    assert row[names.index("gap_ms")] == 6000
    # n5 window: 4 readings spanning 8 s at 1 s nominal -> 9 expected.
    assert row[names.index("a__n5__missing_ratio")] == pytest.approx(1 - 4 / 9)
    assert row[names.index("b__n5__missing_ratio")] == 1.0
    assert np.isnan(row[names.index("b__n5__mean")])
    assert_matches_reference(SMALL, LATENESS_MS, events)


def test_every_window_stat_is_named() -> None:
    names = feature_names(SMALL)
    for w in SMALL.windows:
        for stat in WINDOW_STATS:
            assert f"a__{w.name}__{stat}" in names
    assert names[:4] == ["gap_ms", "late_dropped", "duplicates", "readings_since_reset"]
    assert len(names) == len(set(names)) == 4 + 4 + 2 * (2 + 4 * len(WINDOW_STATS))
