"""Readers for the real benchmark datasets kept read-only under ``../shared/data``.

The files are never copied into the repository; a missing file is an expected failure (a fresh checkout
without the shared data) and raises :class:`~forewarn.errors.UserError` naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forewarn.errors import UserError

DEFAULT_DATA_DIR = Path("../shared/data")

CMAPSS_SETTINGS: tuple[str, ...] = ("setting1", "setting2", "setting3")
CMAPSS_SENSORS: tuple[str, ...] = tuple(f"s{i}" for i in range(1, 22))
CMAPSS_COLUMNS: tuple[str, ...] = ("unit", "cycle", *CMAPSS_SETTINGS, *CMAPSS_SENSORS)
CMAPSS_SUBSETS: tuple[str, ...] = ("FD001", "FD002", "FD003", "FD004")

AI4I_FILE = "ai4i2020/ai4i2020.csv"
AI4I_TARGET = "Machine failure"
# The label broken down by cause: reading any of them as an input leaks the answer.
AI4I_LEAKY_COLUMNS: tuple[str, ...] = ("TWF", "HDF", "PWF", "OSF", "RNF")


@dataclass(frozen=True)
class CmapssSubset:
    """One C-MAPSS subset: full training runs, test runs cut before failure, true RUL after each cut."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    test_rul: pd.Series  # indexed by test unit id


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise UserError(
            f"{what} not found: {path}. Point --data-dir at the folder holding the shared datasets "
            f"(default {DEFAULT_DATA_DIR}, relative to the project root) or run from the project root."
        )
    return path


def read_cmapss_runs(path: Path) -> pd.DataFrame:
    """Parse a ``train_FD00x``/``test_FD00x`` file: whitespace separated, no header, trailing blanks."""
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=list(CMAPSS_COLUMNS), engine="c")
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype("int64")
    return frame.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)


def require_cmapss_files(data_dir: Path, subset: str) -> tuple[Path, Path, Path]:
    """Paths of a subset's train, test and RUL files; raises a :class:`UserError` naming a missing one."""
    subset = subset.upper()
    if subset not in CMAPSS_SUBSETS:
        raise UserError(f"unknown C-MAPSS subset {subset!r}; choose one of {', '.join(CMAPSS_SUBSETS)}")
    folder = Path(data_dir) / "cmapss"
    return (
        _require(folder / f"train_{subset}.txt", f"C-MAPSS {subset} training file"),
        _require(folder / f"test_{subset}.txt", f"C-MAPSS {subset} test file"),
        _require(folder / f"RUL_{subset}.txt", f"C-MAPSS {subset} RUL truth file"),
    )


def require_ai4i_file(data_dir: Path) -> Path:
    return _require(Path(data_dir) / AI4I_FILE, "AI4I 2020 file")


def load_cmapss(data_dir: Path, subset: str) -> CmapssSubset:
    """Load one subset (FD001..FD004) from ``data_dir/cmapss``."""
    subset = subset.upper()
    train_path, test_path, rul_path = require_cmapss_files(data_dir, subset)
    train = read_cmapss_runs(train_path)
    test = read_cmapss_runs(test_path)
    rul = pd.read_csv(rul_path, sep=r"\s+", header=None).iloc[:, 0].astype("int64")
    units = sorted(test["unit"].unique())
    if len(rul) != len(units):
        raise UserError(f"{rul_path} has {len(rul)} lines but the test file has {len(units)} engines")
    # Line i of the RUL file belongs to test engine i (engines are numbered 1..n in file order).
    test_rul = pd.Series(rul.to_numpy(), index=pd.Index(units, name="unit"), name="rul")
    return CmapssSubset(name=subset, train=train, test=test, test_rul=test_rul)


def load_ai4i(data_dir: Path) -> pd.DataFrame:
    """Load AI4I 2020 (UTF-8 with BOM, CRLF) as published, label and failure-mode flags included."""
    path = require_ai4i_file(data_dir)
    frame = pd.read_csv(path, encoding="utf-8-sig")
    missing = {AI4I_TARGET, "Type"} - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks columns {sorted(missing)}; is it the UCI AI4I 2020 file?")
    return frame
