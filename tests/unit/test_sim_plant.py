"""The plant simulator's signal model: seeded, realistic enough to learn from, imperfect on purpose."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from forewarn.assets import load_asset_config
from forewarn.schemas import Reading
from forewarn.sim.batch import Chunk, ReadingBatch
from forewarn.sim.modes import MODES_BY_TYPE
from forewarn.sim.options import DAY_MS, HOUR_MS, SimOptions
from forewarn.sim.plant import PlantSimulator

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CLEAN = {"glitch_rate": 0.0, "dropout_rate": 0.0, "missing_rate": 0.0, "outlier_rate": 0.0}


def collect(sim: PlantSimulator) -> tuple[ReadingBatch, list]:
    chunks: list[Chunk] = list(sim.chunks())
    batches = [c.batch for c in chunks if len(c.batch)]
    first = batches[0]
    merged = ReadingBatch(
        first.machines,
        first.sensors,
        np.concatenate([b.machine for b in batches]),
        np.concatenate([b.ts for b in batches]),
        np.concatenate([b.values for b in batches]),
        np.concatenate([b.outlier for b in batches]),
    )
    return merged, [e for c in chunks for e in c.events]


def simulate(config: str = "plant", **overrides: object) -> tuple[PlantSimulator, ReadingBatch, list]:
    options = {
        "machines": 12,
        "start_ms": START,
        "duration_ms": 6 * HOUR_MS,
        "interval_ms": 10_000,
        "seed": 3,
    }
    options.update(overrides)
    sim = PlantSimulator(load_asset_config(config), SimOptions(**options))  # type: ignore[arg-type]
    batch, events = collect(sim)
    return sim, batch, events


def test_same_seed_same_output_other_seed_other_output() -> None:
    _, a, events_a = simulate(seed=11)
    _, b, events_b = simulate(seed=11)
    _, c, _ = simulate(seed=12)
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.machine, b.machine)
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert events_a == events_b
    assert a.values.shape != c.values.shape or not np.array_equal(a.values, c.values, equal_nan=True)


def test_readings_conform_to_the_schema_and_ranges_except_deliberate_outliers() -> None:
    sim, batch, _ = simulate(outlier_rate=0.01)
    config = load_asset_config("plant")
    records = list(batch.records())
    assert len(records) == len(batch) > 10_000
    out_of_range = 0
    for record, outlier in zip(records, batch.outlier.tolist(), strict=True):
        reading = Reading.model_validate(record)
        sensors = config.machine_type(reading.machine_type).sensors
        assert set(reading.values) <= set(sensors)
        bad = [n for n, v in reading.values.items() if not sensors[n].min <= v <= sensors[n].max]
        if outlier:
            assert len(bad) == 1
            out_of_range += 1
        else:
            assert bad == [], record
    assert out_of_range == int(batch.outlier.sum()) > 0
    # Event time moves forward per machine (Kafka keys by machine, consumers window per machine).
    for m in range(sim.fleet.size):
        ts = batch.ts[batch.machine == m]
        assert np.all(np.diff(ts) > 0)


def test_imperfections_arrive_at_the_configured_rates() -> None:
    rates = {"glitch_rate": 0.01, "dropout_rate": 0.02, "missing_rate": 0.01, "outlier_rate": 0.005}
    sim = PlantSimulator(
        load_asset_config("plant"),
        SimOptions(
            machines=20,
            start_ms=START,
            duration_ms=DAY_MS,
            interval_ms=10_000,
            seed=5,
            degrading_fraction=0.0,
            maintenance_every_ms=None,
            **rates,
        ),
    )
    counts: Counter[str] = Counter()
    readings = values = nan = 0
    for chunk in sim.chunks():
        counts.update(chunk.counts or {})
        readings += len(chunk.batch)
        values += len(chunk.batch) * 5  # every plant type has five sensors
        nan += int(np.isnan(chunk.batch.values).sum()) - len(chunk.batch) * 2  # 7-sensor union
    expected_readings = 20 * 8640
    assert counts["missing_readings"] + readings == expected_readings  # no downtime without faults
    assert counts["missing_readings"] / expected_readings == pytest.approx(0.01, rel=0.15)
    assert counts["outliers"] / readings == pytest.approx(0.005, rel=0.15)
    assert counts["glitched_values"] / values == pytest.approx(0.01, rel=0.1)
    assert counts["dropped_values"] / values == pytest.approx(0.02, rel=0.1)
    assert nan == counts["dropped_values"]


def _windows(events: list) -> list[tuple[str, str, int, int]]:
    """(machine_id, mode, degradation start, failure) for each degradation that ended in failure."""
    started: dict[str, int] = {}
    found = []
    for event in events:
        if event.kind == "degradation_start":
            started[event.machine_id] = event.ts
        elif event.kind == "failure" and event.machine_id in started:
            found.append((event.machine_id, event.mode, started.pop(event.machine_id), event.ts))
        elif event.kind == "maintenance":
            started.pop(event.machine_id, None)
    return found


def test_each_failure_mode_moves_its_documented_sensors_well_before_failure() -> None:
    sim, batch, events = simulate(
        machines=36,
        duration_ms=8 * DAY_MS,
        interval_ms=60_000,
        degrading_fraction=1.0,
        maintenance_every_ms=None,
        warm_start=False,
        **CLEAN,
    )
    ids = np.array(sim.fleet.machines.ids)
    column = {name: i for i, name in enumerate(batch.sensors)}
    config = load_asset_config("plant")
    checked: Counter[tuple[str, str]] = Counter()
    for machine_id, mode, begin, end in _windows(events):
        machine_type = machine_id.rsplit("-", 1)[0]
        own = sim.fleet.modes_of_type[sim.fleet.type_names.index(machine_type)]
        resolved = next(sim.fleet.modes[i] for i in own if sim.fleet.modes[i].name == mode)
        documented = resolved.affected(config.machine_type(machine_type).sensor_names)
        rows = ids[batch.machine] == machine_id
        length = end - begin
        early = rows & (batch.ts >= begin) & (batch.ts < begin + length * 0.15)
        # Well before the failure (60-80 % of the way), not just its last minutes.
        late = rows & (batch.ts >= end - length * 0.4) & (batch.ts < end - length * 0.2)
        assert early.sum() >= 5 and late.sum() >= 5
        for name, effect in documented.items():
            if abs(effect) < 0.15:  # the "slightly" effects drown in load swings this early
                continue
            j = column[name]
            before, after = batch.values[early, j], batch.values[late, j]
            if np.isnan(before).all():
                continue
            shift = np.nanmean(after) - np.nanmean(before)
            noise = np.nanstd(before) + 1e-9
            assert np.sign(shift) == np.sign(effect), (machine_id, mode, name, shift)
            assert abs(shift) > 0.5 * noise, (machine_id, mode, name, shift, noise)
            checked[(machine_type, mode)] += 1
    expected = {(t, m.name) for t, modes in MODES_BY_TYPE.items() for m in modes}
    assert set(checked) == expected


def test_failure_is_followed_by_repair_and_a_reset_to_healthy_readings() -> None:
    sim, batch, events = simulate(
        machines=9,
        duration_ms=6 * DAY_MS,
        interval_ms=60_000,
        degrading_fraction=1.0,
        maintenance_every_ms=None,
        warm_start=False,
        **CLEAN,
    )
    ids = np.array(sim.fleet.machines.ids)
    vib = batch.sensors.index("vibration")
    resets = 0
    for machine_id, mode, begin, end in _windows(events):
        if mode != "bearing_wear":
            continue
        repair = next(
            e for e in events if e.machine_id == machine_id and e.kind == "maintenance" and e.ts > end
        )
        assert repair.mode == "repair"
        rows = ids[batch.machine] == machine_id
        assert not (rows & (batch.ts > end) & (batch.ts < repair.ts)).any()  # down while repaired
        worn = batch.values[rows & (batch.ts > end - HOUR_MS) & (batch.ts <= end), vib]
        fresh = batch.values[rows & (batch.ts >= repair.ts) & (batch.ts < repair.ts + HOUR_MS), vib]
        healthy = batch.values[rows & (batch.ts >= begin) & (batch.ts < begin + HOUR_MS), vib]
        if not (len(worn) and len(fresh) and len(healthy)):
            continue
        assert fresh.mean() < 0.6 * worn.mean()
        assert fresh.mean() == pytest.approx(healthy.mean(), rel=0.25)
        resets += 1
    assert resets >= 2


def test_scheduled_maintenance_catches_a_fault_before_failure() -> None:
    _, _, events = simulate(
        machines=30,
        duration_ms=6 * DAY_MS,
        interval_ms=60_000,
        degrading_fraction=1.0,
        maintenance_every_ms=DAY_MS,
        warm_start=False,
        **CLEAN,
    )
    caught = 0
    degrading: dict[str, bool] = {}
    for event in events:
        if event.kind == "degradation_start":
            degrading[event.machine_id] = True
        elif (
            event.kind == "maintenance"
            and event.mode == "scheduled"
            and degrading.pop(event.machine_id, False)
        ):
            caught += 1
            later = [e for e in events if e.machine_id == event.machine_id and e.ts > event.ts]
            # The caught fault never fails: the next event is the machine's next fault starting.
            assert later == [] or later[0].kind in ("degradation_start", "maintenance")
        elif event.kind == "failure":
            degrading.pop(event.machine_id, None)
    assert caught >= 5
    kinds = Counter(e.kind for e in events)
    assert kinds["failure"] > 0 and kinds["maintenance"] > 0


def test_ground_truth_is_in_time_order_and_well_formed() -> None:
    _, _, events = simulate(machines=20, duration_ms=3 * DAY_MS, interval_ms=60_000)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    plant_modes = {m.name for modes in MODES_BY_TYPE.values() for m in modes}
    for event in events:
        if event.kind in ("failure", "degradation_start"):
            assert event.mode in plant_modes
        else:
            assert event.mode in ("repair", "scheduled")


@pytest.mark.parametrize("config", ["cmapss", "ai4i"])
def test_other_configs_simulate_with_generic_modes(config: str) -> None:
    sim, batch, events = simulate(
        config, machines=6, duration_ms=4 * DAY_MS, interval_ms=600_000, degrading_fraction=1.0
    )
    asset = load_asset_config(config)
    assert len(batch) > 0 and any(e.kind == "failure" for e in events)
    for mode in sim.fleet.modes:
        assert sum(1 for e in mode.effects if e) >= 2
    for record in list(batch.records())[:500]:
        reading = Reading.model_validate(record)
        assert set(reading.values) <= set(asset.machine_type(reading.machine_type).sensors)


def test_types_with_different_intervals_report_at_their_own_pace(tmp_path) -> None:
    config_file = tmp_path / "mixed.yaml"
    config_file.write_text(
        "name: mixed\nmachine_types:\n"
        "  fast: {sampling_interval: 2s, count_windows: [5],"
        " sensors: {vibration: {unit: x, min: 0, max: 50}}}\n"
        "  slow: {sampling_interval: 5s, count_windows: [5], sensors:"
        " {flow_rate: {unit: x, min: 0, max: 9}, pressure: {unit: x, min: 0, max: 9}}}\n"
    )
    sim = PlantSimulator(
        load_asset_config(config_file), SimOptions(machines=2, start_ms=START, duration_ms=HOUR_MS, **CLEAN)
    )
    batch, _ = collect(sim)
    assert sim.fleet.step_ms == 1000
    assert (batch.machine == 0).sum() == 1800 and (batch.machine == 1).sum() == 720


@pytest.mark.parametrize("kind", ["sensor-offset", "sensor-gain", "regime", "new-failure-mode"])
def test_same_seed_and_drift_same_output(kind: str) -> None:
    from forewarn.sim.drift import DriftSpec

    drift = DriftSpec(kind, 2 * HOUR_MS)
    _, a, events_a = simulate(seed=11, drift=drift, degrading_fraction=0.5)
    _, b, events_b = simulate(seed=11, drift=drift, degrading_fraction=0.5)
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.machine, b.machine)
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert events_a == events_b
    _, clean, _ = simulate(seed=11, degrading_fraction=0.5)
    early = clean.ts < START + 2 * HOUR_MS
    assert np.array_equal(clean.values[early], a.values[a.ts < START + 2 * HOUR_MS], equal_nan=True)
