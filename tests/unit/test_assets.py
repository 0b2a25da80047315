from __future__ import annotations

from pathlib import Path

import pytest

from forewarn.assets import (
    SHIPPED_CONFIGS,
    AssetConfigError,
    load_asset_config,
    parse_duration_ms,
)


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_shipped_configs_load(name: str) -> None:
    config = load_asset_config(name)
    assert config.name == name
    for machine_type in config.machine_types.values():
        assert machine_type.windows
        assert machine_type.sensor_names


def test_plant_has_three_types_and_the_core_sensors() -> None:
    config = load_asset_config("plant")
    assert len(config.machine_types) >= 3
    sensors = {s for t in config.machine_types.values() for s in t.sensors}
    assert {"temperature", "vibration", "pressure", "rotational_speed", "current"} <= sensors


def test_cmapss_declares_all_sensors_and_settings() -> None:
    turbofan = load_asset_config("cmapss").machine_type("turbofan")
    assert {f"s{i}" for i in range(1, 22)} <= set(turbofan.sensors)
    assert [turbofan.sensors[k].role for k in ("setting1", "setting2", "setting3")] == ["setting"] * 3
    assert [w.count for w in turbofan.windows] == [5, 10, 20, 30]


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("30s", 30_000), ("10m", 600_000), ("1h", 3_600_000), ("2d", 172_800_000)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_bad_duration_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="expected a duration such as"):
        parse_duration_ms("ten minutes")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assets.yaml"
    path.write_text(text)
    return path


VALID = """\
name: t
machine_types:
  pump:
    sensors:
      temperature: {unit: degC, min: 0, max: 100}
    time_windows: [10m]
"""


def test_minimal_config_is_valid(tmp_path: Path) -> None:
    config = load_asset_config(_write(tmp_path, VALID))
    assert config.machine_type("pump").windows[0].duration_ms == 600_000


def test_error_names_file_line_key_and_fix(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("max: 100", "max: -5"))
    with pytest.raises(AssetConfigError) as info:
        load_asset_config(path)
    message = str(info.value)
    assert f"{path}:5" in message
    assert "machine_types.pump.sensors.temperature" in message
    assert "min < max" in message


def test_misspelled_key_is_pointed_at(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("time_windows", "time_window"))
    with pytest.raises(AssetConfigError) as info:
        load_asset_config(path)
    assert f"{path}:6" in str(info.value)
    assert "remove the key or fix its spelling" in str(info.value)


def test_missing_windows_is_explained(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("    time_windows: [10m]\n", ""))
    with pytest.raises(AssetConfigError, match="declare at least one of time_windows or count_windows"):
        load_asset_config(path)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "  bad: [unclosed\n")
    with pytest.raises(AssetConfigError, match=r"assets\.yaml:\d+: not valid YAML"):
        load_asset_config(path)


def test_missing_file_lists_shipped_configs(tmp_path: Path) -> None:
    with pytest.raises(AssetConfigError, match="plant, cmapss, ai4i"):
        load_asset_config(tmp_path / "nope.yaml")


def test_unknown_machine_type_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="compressor"):
        load_asset_config("plant").machine_type("boiler")
