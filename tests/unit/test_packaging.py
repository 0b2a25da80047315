"""pyproject.toml lists packages explicitly (two source roots); a package left out would be missing
from installs. This test fails when a folder with __init__.py is not listed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    found = set()
    for root, prefix in ((ROOT / "src" / "forewarn", "forewarn"), (ROOT / "services", "forewarn.services")):
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            found.add(".".join((prefix, *relative)))
    return found


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _packages_on_disk() - listed == set()


def test_building_the_cli_imports_no_heavy_library() -> None:
    """`forewarn --help` must stay instant: verbs import Spark, MLflow or LightGBM inside commands."""
    import subprocess
    import sys

    code = (
        "import sys; from forewarn.cli.main import build_app; build_app(); "
        "print(sorted(m for m in ('pyspark', 'mlflow', 'lightgbm', 'faust', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_test_modules_have_unique_names() -> None:
    """pytest's default import mode cannot hold two test modules of one name (unit vs integration)."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
