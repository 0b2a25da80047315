"""Drift in the simulator: each kind changes exactly what its truth says, from its onset on, and nothing
else; runs without drift read as they always have; a fleet seed keeps the plant and changes the week."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from forewarn.assets import load_asset_config
from forewarn.cli.main import build_app
from forewarn.errors import UserError
from forewarn.sim.batch import ReadingBatch
from forewarn.sim.commands import drift_spec
from forewarn.sim.drift import DRIFT_KINDS, NEW_MODE_NAME, DriftSpec, DriftTruth, parse_sensor_list
from forewarn.sim.modes import modes_for
from forewarn.sim.options import DAY_MS, HOUR_MS, SimOptions
from forewarn.sim.plant import PlantSimulator
from forewarn.sim.report import drift_rows

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
AT = 10 * HOUR_MS
ONSET = START + AT
CLEAN = {"glitch_rate": 0.0, "dropout_rate": 0.0, "missing_rate": 0.0, "outlier_rate": 0.0}
# Recorded from the simulator before drift existed: a run without --drift must keep reading like this.
NO_DRIFT_DIGEST = "b6cd208d63cc3d95a94e07582a6c2662a3bc889226b1f099a36089c7149ebfb2"


def _options(**overrides: object) -> SimOptions:
    options: dict[str, object] = {
        "machines": 9,
        "start_ms": START,
        "duration_ms": DAY_MS,
        "interval_ms": 30_000,
        "seed": 21,
        "degrading_fraction": 0.8,
        "maintenance_every_ms": DAY_MS,
    }
    options.update(overrides)
    return SimOptions(**options)  # type: ignore[arg-type]


def _run(config: str | Path = "plant", /, **overrides: object) -> tuple[PlantSimulator, ReadingBatch, list]:
    sim = PlantSimulator(load_asset_config(config), _options(**overrides))
    chunks = list(sim.chunks())
    batches = [c.batch for c in chunks if len(c.batch)]
    merged = ReadingBatch(
        batches[0].machines,
        batches[0].sensors,
        np.concatenate([b.machine for b in batches]),
        np.concatenate([b.ts for b in batches]),
        np.concatenate([b.values for b in batches]),
        np.concatenate([b.outlier for b in batches]),
    )
    return sim, merged, [e for c in chunks for e in c.events]


def _digest(options: SimOptions) -> str:
    digest = hashlib.sha256()
    for chunk in PlantSimulator(load_asset_config("plant"), options).chunks():
        b = chunk.batch
        for array in (b.machine.astype(np.int64), b.ts.astype(np.int64), np.round(b.values, 3), b.outlier):
            digest.update(np.ascontiguousarray(array).tobytes())
        for e in chunk.events:
            digest.update(f"{e.machine_id}|{e.kind}|{e.ts}|{e.mode};".encode())
    return digest.hexdigest()


def _same(a: ReadingBatch, b: ReadingBatch, rows_a: np.ndarray, rows_b: np.ndarray) -> bool:
    return (
        np.array_equal(a.ts[rows_a], b.ts[rows_b])
        and np.array_equal(a.machine[rows_a], b.machine[rows_b])
        and np.array_equal(a.values[rows_a], b.values[rows_b], equal_nan=True)
    )


def _changed_columns(clean: ReadingBatch, drifted: ReadingBatch, rows: np.ndarray) -> set[str]:
    a, b = clean.values[rows], drifted.values[rows]
    differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return {name for j, name in enumerate(clean.sensors) if differs[:, j].any()}


def _types(sim: PlantSimulator, batch: ReadingBatch) -> np.ndarray:
    return np.array(sim.fleet.machines.types)[batch.machine]


# -- runs without drift ---------------------------------------------------------------------------


def test_a_run_without_drift_reads_exactly_as_before() -> None:
    assert _digest(_options()) == NO_DRIFT_DIGEST
    assert _digest(_options(fleet_seed=21)) == NO_DRIFT_DIGEST  # a fleet seed equal to --seed changes nothing


def test_the_same_drift_and_seed_give_the_same_readings() -> None:
    for kind in DRIFT_KINDS:
        drift = DriftSpec(kind, AT)
        assert _digest(_options(drift=drift)) == _digest(_options(drift=drift))
        assert _digest(_options(drift=drift)) != NO_DRIFT_DIGEST


# -- sensor offset and gain ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "machine_type", "sensors"),
    [
        ("sensor-offset", None, None),
        ("sensor-offset", "compressor", ("oil_temperature", "pressure")),
        ("sensor-gain", None, None),
        ("sensor-gain", "cnc_spindle", ("torque",)),
    ],
)
def test_sensor_drift_changes_only_its_sensors_of_its_type_after_the_onset(
    kind: str, machine_type: str | None, sensors: tuple[str, ...] | None
) -> None:
    # Default imperfections on: glitches, dropouts and outliers land exactly where they did.
    sim, clean, clean_events = _run()
    drift = DriftSpec(kind, AT, machine_type=machine_type, sensors=sensors)
    drifted_sim, drifted, events = _run(drift=drift)
    truth = drifted_sim.drift_truth()
    assert truth is not None and truth.onset_ms == ONSET
    assert truth.machine_type == (machine_type or "pump")
    assert truth.sensors == (sensors or ("temperature",))
    assert events == clean_events  # the machines' lives do not change
    assert np.array_equal(clean.ts, drifted.ts) and np.array_equal(clean.machine, drifted.machine)

    before = clean.ts < ONSET
    assert _same(clean, drifted, before, before)
    on_type = _types(sim, clean) == truth.machine_type
    assert _changed_columns(clean, drifted, ~on_type) == set()
    after = on_type & (clean.ts >= ONSET)
    assert _changed_columns(clean, drifted, after) == set(truth.sensors)

    for name in truth.sensors:
        j = clean.sensors.index(name)
        rows = after & ~clean.outlier & ~np.isnan(clean.values[:, j])
        if kind == "sensor-offset":
            scale = sim.fleet.scale[clean.machine[rows], j]
            shift = drifted.values[rows, j] - clean.values[rows, j]
            assert np.median(shift / scale) == pytest.approx(truth.size, abs=0.01)
            noise = sim.fleet.noise[clean.machine[rows], j] * scale
            assert np.median(np.abs(shift) / noise) > 5  # several noise std: plain in a rolling mean
        else:
            # Step-to-step changes of one machine scale by the gain (the level cancels out).
            ratios = []
            for m in np.unique(clean.machine[rows]):
                mine = rows & (clean.machine == m)
                step_clean = np.diff(clean.values[mine, j])
                step_drifted = np.diff(drifted.values[mine, j])
                moved = np.abs(step_clean) > 0.01
                ratios.append(step_drifted[moved] / step_clean[moved])
            assert np.median(np.concatenate(ratios)) == pytest.approx(truth.size, rel=0.02)


# -- regime ----------------------------------------------------------------------------------------


def test_regime_moves_the_load_sensitive_sensors_of_its_type_and_nothing_else() -> None:
    sim, clean, clean_events = _run(**CLEAN)
    drifted_sim, drifted, events = _run(drift=DriftSpec("regime", AT, machine_type="compressor"), **CLEAN)
    truth = drifted_sim.drift_truth()
    assert truth is not None and truth.machine_type == "compressor" and truth.size == 0.9
    config = load_asset_config("plant")
    assert truth.sensors == config.machine_type("compressor").sensor_names  # every plant sensor follows load
    assert events == clean_events

    before = clean.ts < ONSET
    assert _same(clean, drifted, before, before)
    on_type = _types(sim, clean) == "compressor"
    assert _changed_columns(clean, drifted, ~on_type) == set()
    after = on_type & ~before
    assert _changed_columns(clean, drifted, after) == set(truth.sensors)
    # Each sensor's mean moves as the truth predicts (load sensitivity x load change, in scales).
    for name, expected in zip(truth.sensors, truth.mean_shift, strict=True):
        j = clean.sensors.index(name)
        moved = (drifted.values[after, j] - clean.values[after, j]) / sim.fleet.scale[clean.machine[after], j]
        assert np.mean(moved) == pytest.approx(expected, rel=0.2), name
    current = clean.sensors.index("current")
    # Heavier duty: more current on average, and steadier (shallower production cycles).
    assert np.nanmean(drifted.values[after, current]) > np.nanmean(clean.values[after, current]) * 1.05
    for m in np.unique(clean.machine[after]):
        mine = after & (clean.machine == m)
        assert np.std(drifted.values[mine, current]) < np.std(clean.values[mine, current])


def test_regime_leaves_sensors_that_ignore_the_load_alone(tmp_path: Path) -> None:
    config = tmp_path / "mill.yaml"
    config.write_text(
        "name: mill\nmachine_types:\n"
        "  mill: {sampling_interval: 30s, count_windows: [5], sensors:"
        " {motor_current: {unit: A, min: 0, max: 100}, tool_wear: {unit: um, min: 0, max: 300}}}\n"
    )
    _, clean, _ = _run(config, **CLEAN)
    drifted_sim, drifted, _ = _run(config, drift=DriftSpec("regime", AT), **CLEAN)
    truth = drifted_sim.drift_truth()
    assert truth is not None and truth.sensors == ("motor_current",)  # tool wear has no load coefficient
    assert _changed_columns(clean, drifted, clean.ts >= ONSET) == {"motor_current"}


# -- new failure mode -------------------------------------------------------------------------------


def _windows(events: list, mode: str) -> list[tuple[str, int, int]]:
    started: dict[str, tuple[str, int]] = {}
    found = []
    for event in events:
        if event.kind == "degradation_start":
            started[event.machine_id] = (event.mode, event.ts)
        elif event.kind == "failure" and event.machine_id in started:
            began_mode, began = started.pop(event.machine_id)
            if began_mode == mode:
                found.append((event.machine_id, began, event.ts))
        elif event.kind == "maintenance":
            started.pop(event.machine_id, None)
    return found


@pytest.mark.parametrize("machine_type", ["pump", "cnc_spindle"])
def test_a_new_failure_mode_appears_on_its_type_with_an_unseen_signature(machine_type: str) -> None:
    overrides: dict[str, object] = {
        "machines": 12, "duration_ms": 4 * DAY_MS, "interval_ms": 60_000, "maintenance_every_ms": None, **CLEAN
    }
    _, clean, clean_events = _run(**overrides)
    drift = DriftSpec("new-failure-mode", AT, machine_type=machine_type)
    sim, drifted, events = _run(drift=drift, **overrides)
    truth = sim.drift_truth()
    assert truth is not None and truth.mode == NEW_MODE_NAME and truth.machine_type == machine_type

    # Before the onset nothing differs, readings or ground truth.
    before = clean.ts < ONSET
    assert _same(clean, drifted, before, drifted.ts < ONSET)
    assert [e for e in events if e.ts < ONSET] == [e for e in clean_events if e.ts < ONSET]

    new = [e for e in events if e.mode == NEW_MODE_NAME]
    assert new and all(e.ts >= ONSET and e.machine_type == machine_type for e in new)
    assert any(e.kind == "failure" for e in new)  # the raised onset rate makes some happen in the run

    # The signature: only the truth's sensors, each the way no shipped mode of the type moves it.
    kind = load_asset_config("plant").machine_type(machine_type)
    mode = sim.fleet.modes[-1]
    assert mode.name == NEW_MODE_NAME
    effects = dict(zip(sim.fleet.sensors, mode.effects, strict=True))
    assert {n for n, e in effects.items() if e} == set(truth.sensors)
    for name, sign in zip(truth.sensors, truth.signs, strict=True):
        assert np.sign(effects[name]) == sign
        j = kind.sensor_names.index(name)
        shipped = {np.sign(m.effects[j]) for m in modes_for(machine_type, kind) if m.effects[j]}
        assert sign not in shipped, (name, sign, shipped)

    # ... and the readings follow it well before the failure.
    ids = np.array(sim.fleet.machines.ids)
    column = {name: i for i, name in enumerate(drifted.sensors)}
    checked = 0
    for machine_id, begin, end in _windows(events, NEW_MODE_NAME):
        rows = ids[drifted.machine] == machine_id
        length = end - begin
        early = rows & (drifted.ts >= begin) & (drifted.ts < begin + length * 0.15)
        late = rows & (drifted.ts >= end - length * 0.3) & (drifted.ts < end)
        if early.sum() < 5 or late.sum() < 5:
            continue
        for name, sign in zip(truth.sensors, truth.signs, strict=True):
            j = column[name]
            shift = np.mean(drifted.values[late, j]) - np.mean(drifted.values[early, j])
            assert np.sign(shift) == sign, (machine_id, name, shift)
        checked += 1
    assert checked >= 1


def test_new_failure_mode_signatures_for_any_config() -> None:
    plant = load_asset_config("plant")
    pump = DriftSpec("new-failure-mode", AT).resolve(plant)
    assert (pump.machine_type, pump.sensors, pump.signs) == ("pump", ("pressure", "current"), (1.0, -1.0))
    spindle = DriftSpec("new-failure-mode", AT, machine_type="cnc_spindle").resolve(plant)
    assert "rotational_speed" in spindle.sensors  # no shipped spindle mode touches it
    chosen = DriftSpec("new-failure-mode", AT, sensors=("vibration",)).resolve(plant)
    assert chosen.sensors == ("vibration",) and chosen.signs == (-1.0,)  # every shipped mode raises it
    cmapss = load_asset_config("cmapss")
    engine = DriftSpec("new-failure-mode", AT).resolve(cmapss)
    kind = next(iter(cmapss.machine_types.values()))
    assert engine.sensors and all(kind.sensors[n].role != "setting" for n in engine.sensors)


# -- the truth API ----------------------------------------------------------------------------------


def test_the_truth_fills_defaults_from_the_config() -> None:
    plant = load_asset_config("plant")
    offset = DriftSpec("sensor-offset", AT).resolve(plant, START)
    assert offset == DriftTruth("sensor-offset", "pump", ("temperature",), AT, ONSET, 0.5, mean_shift=(0.5,))
    assert DriftSpec("sensor-gain", AT).resolve(plant).size == 1.8
    # The type defaults to the first that has the named sensors.
    assert DriftSpec("sensor-offset", AT, sensors=("oil_temperature",)).resolve(plant).machine_type == "compressor"
    assert DriftSpec("sensor-gain", AT, sensors=("torque",)).affected_sensors(plant) == ("torque",)
    assert DriftSpec("regime", AT).affected_sensors(plant) == plant.machine_type("pump").sensor_names
    cmapss = load_asset_config("cmapss")
    first = next(iter(cmapss.machine_types.values()))
    measured = [n for n in first.sensor_names if first.sensors[n].role != "setting"]
    assert DriftSpec("sensor-offset", AT).affected_sensors(cmapss) == (measured[0],)
    truth = PlantSimulator(plant, _options(drift=DriftSpec("regime", AT))).drift_truth()
    assert truth is not None and truth.as_dict()["sensors"] == list(plant.machine_type("pump").sensor_names)
    assert PlantSimulator(plant, _options()).drift_truth() is None


def test_the_summary_names_what_was_injected() -> None:
    truth = DriftSpec("new-failure-mode", AT, machine_type="compressor").resolve(load_asset_config("plant"), START)
    rows = drift_rows(truth)
    assert rows["drift"] == "new-failure-mode" and rows["  drift type"] == "compressor"
    assert rows["  drift sensors"] == "pressure, current" and rows["  drift mode"] == NEW_MODE_NAME
    assert "2026-01-01T10:00:00Z" in str(rows["  drift onset"])
    assert drift_rows(None) == {}
    assert "compressor" in truth.describe() and "pressure" in truth.describe()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda: DriftSpec("sensor-shift", AT), "sensor-offset, sensor-gain, regime, new-failure-mode"),
        (lambda: DriftSpec("regime", AT, sensors=("current",)), "does not apply to --drift regime"),
        (lambda: DriftSpec("sensor-gain", AT, size=1.0), "gain around the healthy level"),
        (lambda: DriftSpec("sensor-offset", AT, size=0.0), "offset in units"),
        (lambda: DriftSpec("regime", AT, size=1.5), "new mean load"),
        (lambda: DriftSpec("new-failure-mode", AT, size=1.0), "chance per machine per day"),
        (lambda: DriftSpec("sensor-offset", -1), "must not be negative"),
        (lambda: _options(drift=DriftSpec("sensor-offset", DAY_MS)), "must fall inside --duration"),
    ],
)
def test_bad_drifts_are_refused_saying_why(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec()  # type: ignore[operator]


def test_bad_names_are_refused_naming_what_exists() -> None:
    plant = load_asset_config("plant")
    with pytest.raises(ValueError, match="has no sensor humidity; its sensors are: temperature, vibration"):
        DriftSpec("sensor-offset", AT, machine_type="pump", sensors=("humidity",)).resolve(plant)
    with pytest.raises(ValueError, match="cnc_spindle has no sensor pressure; its sensors are: temperature"):
        DriftSpec("new-failure-mode", AT, machine_type="cnc_spindle", sensors=("pressure",)).resolve(plant)
    with pytest.raises(ValueError, match="no machine type of plant has all of torque, oil_temperature"):
        DriftSpec("sensor-offset", AT, sensors=("torque", "oil_temperature")).resolve(plant)
    with pytest.raises(ValueError, match="has no machine type 'fan'; its types are: pump, compressor, cnc_spindle"):
        DriftSpec("regime", AT, machine_type="fan").resolve(plant)


# -- fleet seed ------------------------------------------------------------------------------------


def test_a_fleet_seed_keeps_the_plant_and_changes_the_week() -> None:
    plant = load_asset_config("plant")
    history = PlantSimulator(plant, _options(seed=7))
    live = PlantSimulator(plant, _options(seed=8, fleet_seed=7, interval_ms=10_000))
    for name in ("offset", "cycle_ms", "cycle_phase", "cycle_amp", "day_phase", "day_amp"):
        assert np.array_equal(getattr(history.traits, name), getattr(live.traits, name)), name
    assert history.fleet.machines == live.fleet.machines
    reseeded = PlantSimulator(plant, _options(seed=8))
    assert not np.array_equal(history.traits.offset, reseeded.traits.offset)  # today's seed+1: another plant
    assert _digest(_options(seed=8, fleet_seed=7)) != _digest(_options(seed=7))  # other noise and lives


# -- command line ----------------------------------------------------------------------------------


def test_drift_options_become_one_spec() -> None:
    assert drift_spec(None, None) is None
    spec = drift_spec("Sensor-Offset", "6h", "compressor", "pressure, current", 0.3)
    assert spec == DriftSpec("sensor-offset", 6 * HOUR_MS, "compressor", ("pressure", "current"), 0.3)
    assert parse_sensor_list(" ") is None
    with pytest.raises(UserError, match="--drift needs --drift-at"):
        drift_spec("regime", None)
    with pytest.raises(UserError, match="--drift-at, --drift-size only apply with --drift"):
        drift_spec(None, "6h", size=0.2)
    with pytest.raises(UserError, match="--drift-at: expected a duration"):
        drift_spec("regime", "soon")
    with pytest.raises(UserError, match="choose one of: sensor-offset"):
        drift_spec("wobble", "6h")


def _simulate(folder: Path, *extra: str) -> Result:
    args = ["simulate", "--to", "parquet", str(folder), "-n", "6", "--duration", "3h", "--interval", "30s",
            "--seed", "4", "--start", "2026-01-01T00:00:00Z", "--no-progress", *extra]
    return CliRunner().invoke(build_app(), args)


def test_simulate_takes_the_drift_options_and_reports_the_truth(tmp_path: Path) -> None:
    result = _simulate(tmp_path / "a", "--drift", "sensor-gain", "--drift-at", "1h", "--drift-type", "compressor",
                       "--drift-sensors", "current", "--drift-size", "2", "--fleet-seed", "3")
    assert result.exit_code == 0, result.output
    assert "injecting sensor-gain on compressor" in result.output
    for text in ("drift type", "compressor", "drift sensors", "current", "2026-01-01T01:00:00Z", "fleet seed"):
        assert text in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--drift", "wobble", "--drift-at", "1h"), "choose one of: sensor-offset, sensor-gain, regime"),
        (("--drift", "sensor-offset", "--drift-at", "1h", "--drift-type", "pump", "--drift-sensors", "humidity"),
         "its sensors are: temperature, vibration, pressure, rotational_speed, current"),
        (("--drift", "sensor-offset", "--drift-at", "5h"), "must fall inside --duration"),
        (("--drift-at", "1h",), "only apply with --drift"),
    ],
)
def test_simulate_refuses_bad_drift_options_clearly(tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    result = _simulate(tmp_path / "b", *extra)
    assert result.exit_code != 0
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception)
