"""Dataset replay sources: C-MAPSS, AI4I 2020 and config-shaped tables, checked against the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forewarn.assets import load_asset_config
from forewarn.errors import UserError
from forewarn.schemas import Reading
from forewarn.sim.replay import normalize_column, open_dataset

START = 1_767_225_600_000
HOUR = 3_600_000


def _cmapss_line(unit: int, cycle: int) -> str:
    settings = [0.0007 * cycle, -0.0004, 100.0]
    sensors = [
        518.67,
        641.82 + cycle,
        1589.7,
        1400.6,
        14.62,
        21.61,
        554.36,
        2388.06,
        9046.19,
        1.3,
        47.47,
        521.66,
        2388.02,
        8138.62,
        8.4195,
        0.03,
        392,
        2388,
        100.0,
        39.06,
        23.419,
    ]
    return " ".join(str(v) for v in [unit, cycle, *settings, *sensors]) + "  \n"


@pytest.fixture
def cmapss_file(tmp_path: Path) -> Path:
    path = tmp_path / "train_FD002.txt"
    path.write_text("".join(_cmapss_line(u, c) for u, n in ((1, 3), (2, 2)) for c in range(1, n + 1)))
    return path


def test_cmapss_engines_become_machines_with_cycle_time_and_failures(cmapss_file: Path) -> None:
    dataset = open_dataset(cmapss_file, load_asset_config("cmapss"))
    assert len(dataset) == 5
    assert dataset.machines.ids == ("FD002-u001", "FD002-u002")
    assert set(dataset.machines.types) == {"turbofan"}
    chunks = list(dataset.chunks(START))
    readings = [Reading.model_validate(r) for c in chunks for r in c.batch.records()]
    events = [e for c in chunks for e in c.events]
    by_machine = {(r.machine_id, r.ts) for r in readings}
    assert ("FD002-u001", START + 3 * HOUR) in by_machine and ("FD002-u002", START + 1 * HOUR) in by_machine
    assert readings[0].values["s2"] == pytest.approx(642.82)
    assert len(readings[0].values) == 24
    assert [(e.machine_id, e.ts, e.kind) for e in events] == [
        ("FD002-u002", START + 2 * HOUR, "failure"),
        ("FD002-u001", START + 3 * HOUR, "failure"),
    ]
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)


def test_cmapss_folder_with_subset_and_test_split_has_no_failures(cmapss_file: Path) -> None:
    (cmapss_file.parent / "test_FD002.txt").write_text(cmapss_file.read_text())
    config = load_asset_config("cmapss")
    train = open_dataset(cmapss_file.parent, config, subset="fd002")
    test = open_dataset(cmapss_file.parent, config, subset="FD002", split="test")
    assert len(train.truth) == 2 and len(test.truth) == 0
    assert test.machines.ids[0] == "FD002-test-u001"
    with pytest.raises(UserError, match="--subset"):
        open_dataset(cmapss_file.parent, config)


def test_a_malformed_cmapss_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "train_FD001.txt"
    bad.write_text("1 1 0.1 0.2 100 518.67\n1 2 0.1 0.2 100 518.67\n")
    with pytest.raises(UserError, match="expected 26"):
        open_dataset(bad, load_asset_config("cmapss"))


def test_cmapss_against_the_wrong_config_names_the_columns(cmapss_file: Path) -> None:
    with pytest.raises(UserError) as info:
        open_dataset(cmapss_file, load_asset_config("plant"))
    message = str(info.value)
    assert "turbofan" in message and "s21" in message and "setting1" in message


AI4I_HEADER = (
    "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],"
    "Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF"
)
AI4I_ROWS = [
    "1,M14860,M,298.1,308.6,1551,42.8,0,0,0,0,0,0,0",
    "2,L47181,L,298.2,308.7,1408,46.3,3,0,0,0,0,0,0",
    "3,L47182,L,298.1,308.5,1498,49.4,5,1,1,0,0,1,0",
    "4,L47183,L,298.2,308.6,1433,39.5,7,0,0,0,0,0,1",
    "5,H29424,H,298.2,308.7,1408,40.0,9,1,0,0,0,0,0",
]


@pytest.fixture
def ai4i_file(tmp_path: Path) -> Path:
    path = tmp_path / "ai4i2020.csv"
    # As published: a byte-order mark and CRLF line ends.
    path.write_bytes(("\ufeff" + "\r\n".join([AI4I_HEADER, *AI4I_ROWS]) + "\r\n").encode("utf-8"))
    return path


def test_ai4i_columns_map_to_config_sensors_and_flags_become_events_never_values(ai4i_file: Path) -> None:
    config = load_asset_config("ai4i")
    dataset = open_dataset(ai4i_file, config)
    assert dataset.sensors == config.machine_types["L"].sensor_names
    assert dataset.machines.ids == ("AI4I-H", "AI4I-L", "AI4I-M")
    assert dataset.machines.types == ("H", "L", "M")
    chunks = list(dataset.chunks(START))
    readings = [Reading.model_validate(r) for c in chunks for r in c.batch.records()]
    labels = {"machine_failure", "twf", "hdf", "pwf", "osf", "rnf", "TWF", "Machine failure", "udi"}
    for reading in readings:
        assert set(reading.values) == set(config.machine_types["L"].sensors)
        assert not labels & set(reading.values)
    first_l = next(r for r in readings if r.machine_id == "AI4I-L")
    assert first_l.values == {
        "air_temperature": 298.2,
        "process_temperature": 308.7,
        "rotational_speed": 1408.0,
        "torque": 46.3,
        "tool_wear": 3.0,
    }
    # Each type is one machine sampled every interval in file order.
    assert sorted(r.ts for r in readings if r.machine_id == "AI4I-L") == [
        START,
        START + 60_000,
        START + 120_000,
    ]
    events = sorted((e.machine_id, e.mode, e.ts) for c in chunks for e in c.events)
    assert events == [("AI4I-H", "unknown", START), ("AI4I-L", "TWF+OSF", START + 60_000)]
    assert dataset.notes["flags without 'Machine failure' (no event)"] == 1


def test_ai4i_with_an_extra_column_names_it(tmp_path: Path, ai4i_file: Path) -> None:
    frame = pd.read_csv(ai4i_file, encoding="utf-8-sig")
    frame["Humidity [%]"] = 40.0
    frame = frame.drop(columns=["Torque [Nm]"])
    odd = tmp_path / "odd.csv"
    frame.to_csv(odd, index=False)
    with pytest.raises(UserError) as info:
        open_dataset(odd, load_asset_config("ai4i"))
    assert "unknown columns" in str(info.value) and "humidity" in str(info.value)
    assert "missing sensor columns: torque" in str(info.value)


def test_normalize_column() -> None:
    assert normalize_column("Air temperature [K]") == "air_temperature"
    assert normalize_column("Rotational speed [rpm]") == "rotational_speed"
    assert normalize_column("Tool wear [min]") == "tool_wear"


def _table(rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "machine_id": ["p1", "c1"] * (rows // 2),
            "machine_type": ["pump", "compressor"] * (rows // 2),
            "ts": [f"2026-01-01T00:00:0{i}Z" for i in range(rows)],
            "temperature": 50.0,
            "vibration": 3.0,
            "pressure": 5.0,
            "rotational_speed": 1500.0,
            "current": 60.0,
            "oil_temperature": 70.0,
        }
    )


def test_a_config_shaped_table_replays_with_its_own_times(tmp_path: Path) -> None:
    path = tmp_path / "plant.parquet"
    _table().to_parquet(path)
    dataset = open_dataset(path, load_asset_config("plant"))
    records = [r for c in dataset.chunks(None) for r in c.batch.records()]
    assert [r["ts"] for r in records] == [START, START + 1000, START + 2000, START + 3000]
    pump = next(r for r in records if r["machine_id"] == "p1")
    assert "oil_temperature" not in pump["values"]  # not a pump sensor, even though the cell is filled
    shifted = [r["ts"] for c in dataset.chunks(START + HOUR) for r in c.batch.records()]
    assert shifted[0] == START + HOUR


def test_a_table_that_does_not_match_names_unknown_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "plant.csv"
    _table().drop(columns=["current"]).assign(humidity=1.0).to_csv(path, index=False)
    with pytest.raises(UserError) as info:
        open_dataset(path, load_asset_config("plant"))
    assert "unknown columns: humidity" in str(info.value)
    assert "missing sensor columns: current" in str(info.value)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="machine_id, machine_type, ts"):
        open_dataset(path, load_asset_config("plant"))


def test_replayed_values_keep_float_precision(cmapss_file: Path) -> None:
    dataset = open_dataset(cmapss_file, load_asset_config("cmapss"))
    assert np.isfinite(dataset.values).all()
