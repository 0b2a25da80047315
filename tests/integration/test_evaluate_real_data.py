"""The evaluate commands on the real shared datasets: C-MAPSS in its fast configuration, AI4I in full.

Together well under three minutes on two cores.

Skipped when ../shared/data is absent (a checkout without the shared datasets). These read files only;
they need no Kafka, Redis or MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.cli.main import build_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]


@pytest.fixture
def data_dir(shared_data: Path) -> Path:
    """The shared datasets; skips (via ``shared_data``) when ../shared/data is absent."""
    for needed in ("cmapss/train_FD001.txt", "ai4i2020/ai4i2020.csv"):
        if not (shared_data / needed).is_file():
            pytest.skip(f"{shared_data / needed} not found; see ../shared/data/README.md")
    return shared_data


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_cmapss_fd001_fast(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fd001.json"
    _run(["evaluate", "cmapss", "--subset", "FD001", "--data-dir", str(data_dir), "--fast", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["subset"] == "FD001" and result["n_test_units"] == 100
    # The fast configuration gives up a little accuracy; the full one is held to the targets by hand.
    assert result["rmse"] < 13.5, result
    assert result["rmse_uncapped"] >= result["rmse"] - 1.0
    assert 0 < result["cv_rmse"] < 13.5
    assert result["wall_s"] > 0 and result["peak_rss_mb"] > 0


def test_ai4i_full(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ai4i.json"
    _run(["evaluate", "ai4i", "--data-dir", str(data_dir), "--json", str(out)])
    result = json.loads(out.read_text())
    assert not {"TWF", "HDF", "PWF", "OSF", "RNF", "Machine failure"} & set(result["features"])
    assert result["f1"] >= 0.90, result  # the full configuration is cheap enough to hold to target
    assert result["pr_auc"] > 0.85
    assert set(result["per_type"]) == {"L", "M", "H"}
    assert sum(t["n"] for t in result["per_type"].values()) == 10000


def test_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["evaluate", "ai4i", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "ai4i2020.csv" in str(result.exception) or "ai4i2020.csv" in result.output
