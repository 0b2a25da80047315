"""The etl and eda verbs are registered, parse their options, and refuse contradictory ones."""

from __future__ import annotations

from typer.testing import CliRunner

from forewarn.cli.main import build_app


def test_etl_and_eda_are_forewarn_verbs() -> None:
    runner = CliRunner()
    app = build_app()
    assert "stream" in runner.invoke(app, ["etl", "--help"]).output
    build_help = runner.invoke(app, ["etl", "build", "--help"]).output
    for option in ("--lake", "--out", "--horizon", "--rul-cap", "--config"):
        assert option in build_help
    assert "--mlflow" in runner.invoke(app, ["eda", "--help"]).output


def test_stream_modes_exclude_each_other() -> None:
    result = CliRunner().invoke(build_app(), ["etl", "stream", "--once", "--duration", "5"])
    assert result.exit_code != 0
    assert "choose one of --once, --duration" in str(result.exception) + result.output


def test_a_bad_horizon_is_a_clear_error() -> None:
    result = CliRunner().invoke(build_app(), ["etl", "build", "--horizon", "soon"])
    assert result.exit_code != 0
    assert "30cycles" in str(result.exception) + result.output


def test_the_dvc_stage_runs_the_etl_build_command_with_known_options() -> None:
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    stage = dvc["stages"]["etl_build"]
    assert stage["cmd"].startswith("forewarn etl build")
    build_help = CliRunner().invoke(build_app(), ["etl", "build", "--help"]).output
    for flag in (w for w in stage["cmd"].split() if w.startswith("--")):
        assert flag in build_help
    assert "data/training/dataset" in stage["outs"]
    assert list(stage["metrics"][0]) == ["data/training/manifest.json"]
