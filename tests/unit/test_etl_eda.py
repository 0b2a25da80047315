"""The EDA report renders every section from a small training set, and says so when MLflow is away."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forewarn.cli.main import build_app
from forewarn.etl import eda

SENSORS = {"pump": ["temperature", "vibration"], "compressor": ["temperature", "oil_temperature"]}


@pytest.fixture
def training_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for machine_type, sensors in SENSORS.items():
        n = 400
        ts = 1_767_225_600_000 + np.arange(n) * 600_000
        ttf = (ts[-1] - ts).astype(float)
        frame = pd.DataFrame({"machine_id": "m-" + machine_type, "ts": ts,
                              "failure_within_horizon": (ttf <= 24 * 3_600_000).astype(int),
                              "time_to_failure_ms": ttf, "label_source": "failure", "out_of_range": 0})
        for sensor in ("temperature", "vibration", "oil_temperature"):
            values = rng.normal(50, 5, n) + np.linspace(0, 10, n) if sensor in sensors else np.full(n, np.nan)
            values[rng.random(n) < 0.05] = np.nan
            frame[f"value__{sensor}"] = values
            frame[f"clean__{sensor}"] = values
            scaled = (values - np.nanmean(values)) / np.nanstd(values) if sensor in sensors else values
            frame[f"norm__{sensor}"] = scaled
        folder = tmp_path / "training" / "dataset" / f"machine_type={machine_type}"
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "part-0.parquet")
    return tmp_path / "training"


def test_the_report_has_every_section_with_a_plot(training_dir: Path, tmp_path: Path) -> None:
    report = eda.build_report(training_dir)
    assert [s.title for s in report.sections] == [
        "Sensor distributions by machine type", "Sensor correlations", "Missing values",
        "Sensor trends in the 48 hours before failures", "Label balance"]
    assert all(s.png and s.png.startswith(b"\x89PNG") for s in report.sections)
    assert eda.sensors_by_type(eda.load(training_dir)[0]) == {
        "compressor": ["temperature", "oil_temperature"], "pump": ["temperature", "vibration"]}
    html = eda.write(report, tmp_path / "r" / "eda.html").read_text()
    assert html.count("data:image/png;base64,") == 5


def test_without_mlflow_the_report_is_kept_and_the_reason_given(training_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_MLFLOW__TRACKING_URI", "http://127.0.0.1:9")
    out = tmp_path / "eda.html"
    result = CliRunner().invoke(build_app(), ["eda", "--data", str(training_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "not reachable" in result.output and "--no-mlflow" in result.output


def test_a_missing_training_set_says_how_to_build_one(tmp_path: Path) -> None:
    from forewarn.errors import UserError

    with pytest.raises(UserError, match="etl build"):
        eda.build_report(tmp_path / "nothing")
