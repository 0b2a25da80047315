"""Simulation output: Parquet datasets, pacing, defaults and the command lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forewarn.cli.main import build_app
from forewarn.errors import UserError
from forewarn.settings import ForewarnSettings
from forewarn.sim.batch import Machines, ReadingBatch
from forewarn.sim.driver import Pacer
from forewarn.sim.options import DAY_MS
from forewarn.sim.outputs import OutputSpec, open_outputs
from forewarn.sim.timing import default_start, parse_speedup, parse_start

START = "2026-01-01T00:00:00Z"
ROOT = Path(__file__).resolve().parents[2]


def _simulate_to(folder: Path, *extra: str) -> str:
    args = [
        "simulate",
        "--to",
        "parquet",
        str(folder),
        "-n",
        "8",
        "--duration",
        "3h",
        "--interval",
        "5s",
        "--seed",
        "4",
        "--start",
        START,
        "--degrading-fraction",
        "1",
        "--no-progress",
        *extra,
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    return result.output


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def test_parquet_history_is_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    _simulate_to(tmp_path / "a")
    _simulate_to(tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a and a == b
    assert any(name.startswith("readings/date=2026-01-01/") for name in a)
    assert any(name.startswith("ground_truth/date=") for name in a)


def test_parquet_history_with_drift_is_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    drift = ("--drift", "regime", "--drift-at", "1h", "--drift-type", "compressor")
    output = _simulate_to(tmp_path / "a", *drift)
    _simulate_to(tmp_path / "b", *drift)
    _simulate_to(tmp_path / "clean")
    a, b, clean = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "clean")
    assert a and a == b and a != clean
    assert "injecting regime on compressor" in output


def test_parquet_datasets_hold_what_the_summary_reports(tmp_path: Path) -> None:
    output = _simulate_to(tmp_path / "h")
    readings = pd.read_parquet(tmp_path / "h" / "readings")
    truth = pd.read_parquet(tmp_path / "h" / "ground_truth")
    assert f"{len(readings):,}" in output
    assert set(readings.columns) >= {"machine_id", "machine_type", "ts", "vibration", "pressure", "date"}
    assert readings["ts"].dtype == np.int64
    assert readings["machine_id"].nunique() == 8
    assert set(truth["kind"]) <= {"failure", "maintenance", "degradation_start"}
    assert (truth["kind"] == "degradation_start").any()
    with pytest.raises(AssertionError):
        _simulate_to(tmp_path / "h")  # refuses to mix two runs ...
    _simulate_to(tmp_path / "h", "--overwrite")  # ... unless asked


def test_outputs_need_a_folder_for_parquet() -> None:
    with pytest.raises(UserError, match="folder"):
        open_outputs(OutputSpec(to="parquet"), ForewarnSettings(), ("a",))


def _batch(ts: list[int]) -> ReadingBatch:
    n = len(ts)
    return ReadingBatch(
        Machines(("m",), ("t",)),
        ("x",),
        np.zeros(n, dtype=np.int64),
        np.array(ts),
        np.ones((n, 1)),
        np.zeros(n, dtype=bool),
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_maps_event_time_to_wall_time_by_the_speedup() -> None:
    clock = FakeClock()
    pacer = Pacer(0, speedup=3600.0, clock=clock, sleep=clock.sleep)
    hour = 3_600_000
    sent = []
    for piece in pacer.slices(_batch([0, hour // 2, hour, 2 * hour])):
        sent.append((round(clock.now - 100.0, 2), piece.ts.tolist()))
    assert sent == [(0.0, [0]), (0.5, [hour // 2]), (1.0, [hour]), (2.0, [2 * hour])]


def test_pacer_rate_caps_readings_per_second() -> None:
    clock = FakeClock()
    pacer = Pacer(0, rate=100.0, clock=clock, sleep=clock.sleep)
    total = sum(len(p) for p in pacer.slices(_batch(list(range(500)))))
    assert total == 500 and clock.now - 100.0 == pytest.approx(5.0, abs=0.05)


def test_time_options() -> None:
    assert parse_start("2026-01-01T00:00:00Z") == 1_767_225_600_000
    assert parse_start("1767225600000") == 1_767_225_600_000
    with pytest.raises(UserError):
        parse_start("yesterday")
    assert parse_speedup(0) is None and parse_speedup(float("inf")) is None and parse_speedup(60) == 60
    now = 1_767_225_600_000 + 5 * 3_600_000
    assert default_start(DAY_MS, None, now) == 1_767_225_600_000 - DAY_MS  # history ends at midnight
    assert default_start(DAY_MS, 60.0, now) == now + 60_000 - DAY_MS  # paced: ends now


def test_replay_of_a_mismatched_file_exits_non_zero_naming_columns(tmp_path: Path) -> None:
    path = tmp_path / "plant.csv"
    path.write_text("machine_id,machine_type,ts,temperature,humidity\np1,pump,0,50,1\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "forewarn.cli",
            "replay",
            str(path),
            "--config",
            "plant",
            "--to",
            "parquet",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown columns: humidity" in done.stderr and "missing sensor columns: vibration" in done.stderr
