"""Read a recorded dataset (C-MAPSS, AI4I 2020, or any table shaped like a config) into a :class:`Dataset`.

Every source is checked against the asset config before anything is sent: a file whose columns do not
match the config's sensors is refused with the unknown and the missing columns named, since sending it
would only fill the dead-letter topic.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from forewarn.assets import AssetConfig
from forewarn.errors import UserError
from forewarn.sim.batch import Machines
from forewarn.sim.dataset import Dataset, TruthAt

CMAPSS_COLUMNS: tuple[str, ...] = (
    "unit",
    "cycle",
    "setting1",
    "setting2",
    "setting3",
    *(f"s{i}" for i in range(1, 22)),
)
CMAPSS_FILE = re.compile(r"^(train|test)_(FD\d{3})\.txt$", re.IGNORECASE)
# What the NASA readme says each subset's engines die of (per engine it is not given for FD003/FD004).
CMAPSS_FAULT = {"FD001": "hpc_degradation", "FD002": "hpc_degradation"}
CMAPSS_FAULT_DEFAULT = "hpc_or_fan_degradation"

AI4I_LABELS: tuple[str, ...] = ("TWF", "HDF", "PWF", "OSF", "RNF")
AI4I_TARGET = "Machine failure"
TABLE_KEYS = ("machine_id", "machine_type", "ts")


def normalize_column(name: str) -> str:
    """'Air temperature [K]' -> 'air_temperature': the config's sensor naming."""
    without_unit = re.sub(r"\[[^\]]*\]|\([^)]*\)", "", name)
    return re.sub(r"[^0-9a-z]+", "_", without_unit.strip().lower()).strip("_")


def check_columns(path: Path, config: AssetConfig, type_name: str, columns: list[str]) -> None:
    """Refuse a source whose sensor columns differ from the machine type's sensors, naming both ways."""
    if type_name not in config.machine_types:
        known = ", ".join(sorted(config.machine_types))
        sensors = {s for kind in config.machine_types.values() for s in kind.sensor_names}
        unknown = [c for c in columns if c not in sensors]
        raise UserError(
            f"{path} does not match asset config {config.name!r}: machine type {type_name!r} is not in it "
            f"(it declares: {known})"
            + (f"; unknown columns: {', '.join(unknown)}" if unknown else "")
            + ". Pick the matching config with --config (or --machine-type)"
        )
    expected = list(config.machine_types[type_name].sensor_names)
    unknown = [c for c in columns if c not in expected]
    missing = [s for s in expected if s not in columns]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown columns (not sensors of {type_name!r}): {', '.join(unknown)}")
        if missing:
            parts.append(f"missing sensor columns: {', '.join(missing)}")
        raise UserError(
            f"{path} does not match asset config {config.name!r}: {'; '.join(parts)}. "
            "Pick the matching config with --config, or write one for this file"
        )


def _pick_type(config: AssetConfig, wanted: str | None, preferred: str) -> str:
    if wanted:
        return wanted
    if preferred in config.machine_types or len(config.machine_types) != 1:
        return preferred
    return next(iter(config.machine_types))


# -- C-MAPSS -----------------------------------------------------------------------------------------


def read_cmapss(path: Path) -> pd.DataFrame:
    """Whitespace separated, no header, trailing blanks; exactly 26 columns on every line."""
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, engine="c")
    except pd.errors.ParserError as exc:
        raise UserError(f"{path}: not a C-MAPSS file ({exc}); expected 26 columns per line") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty") from None
    if frame.shape[1] != len(CMAPSS_COLUMNS) or frame.isna().any().any():
        raise UserError(
            f"{path}: expected {len(CMAPSS_COLUMNS)} whitespace-separated numbers per line "
            f"(unit, cycle, setting1..3, s1..s21), found {frame.shape[1]} columns or short lines"
        )
    frame.columns = list(CMAPSS_COLUMNS)
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype("int64")
    return frame


def cmapss_path(path: Path, subset: str | None, split: str | None) -> tuple[Path, str, str]:
    """A file path, or a folder plus --subset (and --split): returns (file, subset, split)."""
    if path.is_dir():
        if not subset:
            raise UserError(f"{path} is a folder: name the C-MAPSS subset with --subset FD001 (FD001-FD004)")
        name = f"{(split or 'train').lower()}_{subset.upper()}.txt"
        for candidate in (path / name, path / "cmapss" / name):
            if candidate.is_file():
                return candidate, subset.upper(), (split or "train").lower()
        raise UserError(f"{name} not found in {path} (nor in {path / 'cmapss'})")
    match = CMAPSS_FILE.match(path.name)
    found_split, found_subset = (match.group(1).lower(), match.group(2).upper()) if match else (None, None)
    return path, (subset or found_subset or path.stem).upper(), (split or found_split or "train").lower()


def load_cmapss(
    path: Path,
    config: AssetConfig,
    subset: str | None,
    split: str | None,
    machine_type: str | None,
    interval_ms: int | None,
) -> Dataset:
    file, subset_name, split_name = cmapss_path(path, subset, split)
    if not file.is_file():
        raise UserError(f"{file} not found")
    type_name = _pick_type(config, machine_type, "turbofan")
    check_columns(file, config, type_name, list(CMAPSS_COLUMNS[2:]))
    frame = read_cmapss(file)
    units = np.sort(frame["unit"].unique())
    tag = "" if split_name == "train" else f"{split_name}-"
    ids = tuple(f"{subset_name}-{tag}u{u:03d}" for u in units.tolist())
    position = np.searchsorted(units, frame["unit"].to_numpy())
    truth: tuple[TruthAt, ...] = ()
    if split_name == "train":  # training runs end in failure; test runs are cut off before it
        last = frame.groupby("unit")["cycle"].max()
        mode = CMAPSS_FAULT.get(subset_name, CMAPSS_FAULT_DEFAULT)
        truth = tuple(
            TruthAt(int(np.searchsorted(units, u)), int(c), "failure", mode) for u, c in last.items()
        )
    sensors = tuple(CMAPSS_COLUMNS[2:])
    return Dataset(
        description=f"C-MAPSS {subset_name} {split_name} ({file})",
        machines=Machines(ids, (type_name,) * len(ids)),
        sensors=sensors,
        machine=position.astype(np.int64),
        time=frame["cycle"].to_numpy(np.int64),
        values=frame[list(sensors)].to_numpy(np.float64),
        synthetic_time=True,
        step_ms=interval_ms or config.machine_types[type_name].sampling_interval_ms,
        truth=truth,
        notes={"failure events": len(truth), "source": f"C-MAPSS {subset_name} {split_name}"},
    )


# -- AI4I 2020 and other tables ----------------------------------------------------------------------


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq") or path.is_dir():
            return pd.read_parquet(path)
        # utf-8-sig drops the byte-order mark (AI4I has one) that would otherwise prefix the first name.
        return pd.read_csv(path, encoding="utf-8-sig")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path} as CSV or Parquet: {exc}") from None


def is_ai4i(frame: pd.DataFrame) -> bool:
    return "Type" in frame.columns and AI4I_TARGET in frame.columns


def load_ai4i(path: Path, frame: pd.DataFrame, config: AssetConfig, interval_ms: int | None) -> Dataset:
    """AI4I rows are observations of three machine types, with no machine id: each type becomes one
    machine (AI4I-L, AI4I-M, AI4I-H) sampled every interval in file order. The failure-mode flags are
    the label broken down: they become ground-truth events, never sensor values."""
    labels = [c for c in (AI4I_TARGET, *AI4I_LABELS) if c in frame.columns]
    ignored = [c for c in ("UDI", "Product ID") if c in frame.columns]
    renamed = {c: normalize_column(c) for c in frame.columns if c not in (*labels, *ignored, "Type")}
    sensor_columns = list(renamed.values())
    types = frame["Type"].astype(str).to_numpy()
    present = sorted(set(types.tolist()))
    for type_name in present:
        check_columns(path, config, type_name, sensor_columns)
    order = (
        np.argsort(frame["UDI"].to_numpy(), kind="stable")
        if "UDI" in frame.columns
        else np.arange(len(frame))
    )
    frame, types = frame.iloc[order].reset_index(drop=True), types[order]
    machine = np.searchsorted(np.array(present), types).astype(np.int64)
    step = np.zeros(len(frame), dtype=np.int64)
    for m in range(len(present)):
        rows = np.flatnonzero(machine == m)
        step[rows] = np.arange(rows.size)
    sensors = tuple(config.machine_types[present[0]].sensor_names)
    values = frame.rename(columns=renamed)[list(sensors)].to_numpy(np.float64)

    failed = frame[AI4I_TARGET].to_numpy() == 1
    flags = frame[[c for c in AI4I_LABELS if c in frame.columns]].to_numpy() == 1
    names = [c for c in AI4I_LABELS if c in frame.columns]
    truth = tuple(
        TruthAt(
            int(machine[i]),
            int(step[i]),
            "failure",
            "+".join(n for n, f in zip(names, flags[i], strict=True) if f) or "unknown",
        )
        for i in np.flatnonzero(failed).tolist()
    )
    flagged_only = int((flags.any(axis=1) & ~failed).sum())
    return Dataset(
        description=f"AI4I 2020 ({path})",
        machines=Machines(tuple(f"AI4I-{t}" for t in present), tuple(present)),
        sensors=sensors,
        machine=machine,
        time=step,
        values=values,
        synthetic_time=True,
        step_ms=interval_ms or config.machine_types[present[0]].sampling_interval_ms,
        truth=truth,
        notes={
            "failure events": len(truth),
            "labels kept out of the readings": ", ".join(labels),
            "flags without 'Machine failure' (no event)": flagged_only,
        },
    )


def _epoch_ms(column: pd.Series, path: Path) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(np.int64)
    try:
        moments = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: column ts must be epoch milliseconds or RFC 3339 text: {exc}") from None
    return (moments.astype("int64") // 1_000_000).to_numpy(np.int64)


def load_table(path: Path, frame: pd.DataFrame, config: AssetConfig) -> Dataset:
    """A table with machine_id, machine_type, ts and the config's sensor columns (any row order)."""
    missing_keys = [k for k in TABLE_KEYS if k not in frame.columns]
    if missing_keys:
        raise UserError(
            f"{path} does not match asset config {config.name!r}: missing columns {', '.join(missing_keys)} "
            f"(a replayable table has {', '.join(TABLE_KEYS)} and one column per sensor)"
        )
    columns = [c for c in frame.columns if c not in (*TABLE_KEYS, "site", "date")]
    types = frame["machine_type"].astype(str)
    unknown_types = sorted(set(types) - set(config.machine_types))
    if unknown_types:
        known = ", ".join(sorted(config.machine_types))
        raise UserError(
            f"{path}: machine types {', '.join(unknown_types)} are not in asset config {config.name!r} "
            f"(it declares: {known})"
        )
    present = sorted(set(types))
    union = list(dict.fromkeys(s for t in present for s in config.machine_types[t].sensor_names))
    unknown = [c for c in columns if c not in union]
    missing = [s for s in union if s not in columns]
    if unknown or missing:
        parts = ([f"unknown columns: {', '.join(unknown)}"] if unknown else []) + (
            [f"missing sensor columns: {', '.join(missing)}"] if missing else []
        )
        raise UserError(f"{path} does not match asset config {config.name!r}: {'; '.join(parts)}")
    pairs = frame[["machine_id", "machine_type"]].astype(str).drop_duplicates("machine_id")
    ids = tuple(sorted(pairs["machine_id"]))
    type_of = dict(zip(pairs["machine_id"], pairs["machine_type"], strict=True))
    machine = np.searchsorted(np.array(ids), frame["machine_id"].astype(str).to_numpy()).astype(np.int64)
    values = frame[union].to_numpy(np.float64)
    # A sensor column of another type is not this machine's sensor, even if the cell holds a number.
    for t in present:
        own = set(config.machine_types[t].sensor_names)
        rows = (types == t).to_numpy()
        for j, name in enumerate(union):
            if name not in own:
                values[rows, j] = np.nan
    return Dataset(
        description=f"table {path}",
        machines=Machines(ids, tuple(type_of[i] for i in ids)),
        sensors=tuple(union),
        machine=machine,
        time=_epoch_ms(frame["ts"], path),
        values=values,
        synthetic_time=False,
        notes={"source": f"table {path.name}"},
    )


def _holds_cmapss(folder: Path) -> bool:
    folders = [d for d in (folder, folder / "cmapss") if d.is_dir()]
    return any(CMAPSS_FILE.match(p.name) for d in folders for p in d.iterdir())


def open_dataset(
    path: Path,
    config: AssetConfig,
    *,
    source_format: str = "auto",
    subset: str | None = None,
    split: str | None = None,
    machine_type: str | None = None,
    interval_ms: int | None = None,
) -> Dataset:
    """Recognise the dataset (``auto``) or take the named format: cmapss, ai4i, table."""
    if not path.exists():
        raise UserError(f"{path} not found")
    kind = source_format
    if kind == "auto" and (path.suffix.lower() == ".txt" or (path.is_dir() and _holds_cmapss(path))):
        kind = "cmapss"
    if kind == "cmapss":
        return load_cmapss(path, config, subset, split, machine_type, interval_ms)
    frame = read_table(path)
    if kind == "ai4i" or (kind == "auto" and is_ai4i(frame)):
        if not is_ai4i(frame):
            raise UserError(f"{path} lacks the AI4I columns 'Type' and '{AI4I_TARGET}'")
        return load_ai4i(path, frame, config, interval_ms)
    return load_table(path, frame, config)
