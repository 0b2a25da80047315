"""``forewarn eda``: an HTML report on a built training set, with its figures embedded as PNG.

Figures: sensor distributions by machine type, sensor correlations, missingness and out-of-range
rates, sensor trends in the hours before failures, and label balance. The report reads only the columns
it plots, and at most ``sample`` rows (evenly spaced, so the same data gives the same report).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.errors import UserError

BASE_COLUMNS = ("machine_id", "machine_type", "ts", "failure_within_horizon", "time_to_failure_ms", "label_source")
TREND_HOURS = 48
EXPERIMENT = "forewarn-eda"


@dataclass
class Section:
    title: str
    text: str
    png: bytes | None = None


@dataclass
class Report:
    summary: dict[str, Any]
    sections: list[Section] = field(default_factory=list)


def _locate(data: Path) -> tuple[Path, dict[str, Any] | None]:
    """The dataset folder and the manifest beside it (``data`` is the build's --out, or the dataset)."""
    data = Path(data)
    for dataset, manifest in ((data / "dataset", data / "manifest.json"), (data, data.parent / "manifest.json")):
        if dataset.is_dir() and any(dataset.rglob("*.parquet")):
            return dataset, json.loads(manifest.read_text()) if manifest.is_file() else None
    raise UserError(f"no training set in {data}; build one with 'forewarn etl build --out {data}'")


def load(data: Path, sample: int = 200_000) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    import pyarrow.dataset as ds

    dataset_dir, manifest = _locate(data)
    dataset = ds.dataset(str(dataset_dir), format="parquet", partitioning="hive")
    names = dataset.schema.names
    wanted = [c for c in names if c in BASE_COLUMNS or c.startswith(("value__", "clean__", "norm__"))
              or c == "out_of_range"]
    table = dataset.to_table(columns=wanted)
    if table.num_rows > sample:
        table = table.take(np.linspace(0, table.num_rows - 1, sample).astype(np.int64))
    frame = table.to_pandas()
    frame["machine_type"] = frame["machine_type"].astype(str)
    return frame, manifest


def sensors_by_type(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Each machine type's sensors: the raw value columns it ever filled."""
    out = {}
    columns = [c for c in frame.columns if c.startswith("value__")]
    for machine_type, group in frame.groupby("machine_type", sort=True):
        out[str(machine_type)] = [c.removeprefix("value__") for c in columns if group[c].notna().any()]
    return out


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def distributions(frame: pd.DataFrame, sensors: dict[str, list[str]]) -> Section:
    import matplotlib.pyplot as plt
    import seaborn as sns

    width = max(len(s) for s in sensors.values())
    fig, axes = plt.subplots(len(sensors), width, figsize=(3.2 * width, 2.6 * len(sensors)), squeeze=False)
    for row, (machine_type, names) in enumerate(sensors.items()):
        group = frame[frame["machine_type"] == machine_type]
        for col in range(width):
            ax = axes[row][col]
            if col >= len(names):
                ax.axis("off")
                continue
            values = group[f"clean__{names[col]}"].dropna()
            if len(values):
                low, high = values.quantile([0.001, 0.999]).tolist()  # glitches would stretch the axis
                sns.histplot(values[(values >= low) & (values <= high)], bins=40, ax=ax,
                             color=sns.color_palette()[row % 10], edgecolor=None)
            ax.set_title(f"{machine_type}: {names[col]}", fontsize=9)
            ax.set_xlabel("")
            ax.set_ylabel("readings" if col == 0 else "")
    fig.tight_layout()
    return Section("Sensor distributions by machine type",
                   "Cleaned values (out-of-range values removed, short gaps imputed), one row per machine type; "
                   "the extreme 0.1% on each side is left out so that glitches do not hide the shape.",
                   _png(fig))


def correlations(frame: pd.DataFrame, sensors: dict[str, list[str]]) -> Section:
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(sensors), figsize=(4.6 * len(sensors), 4.2), squeeze=False)
    for ax, (machine_type, names) in zip(axes[0], sensors.items(), strict=True):
        group = frame[frame["machine_type"] == machine_type]
        corr = group[[f"clean__{s}" for s in names]].corr()
        corr.index = corr.columns = names
        sns.heatmap(corr, ax=ax, vmin=-1, vmax=1, cmap="vlag", annot=len(names) <= 8, fmt=".2f", square=True,
                    cbar=ax is axes[0][-1], annot_kws={"fontsize": 7})
        ax.set_title(machine_type)
    fig.tight_layout()
    return Section("Sensor correlations", "Pearson correlation of the cleaned values, per machine type.", _png(fig))


def missingness(frame: pd.DataFrame, sensors: dict[str, list[str]]) -> Section:
    import matplotlib.pyplot as plt
    import seaborn as sns

    all_sensors = sorted({s for names in sensors.values() for s in names})
    missing = pd.DataFrame(np.nan, index=list(sensors), columns=all_sensors)
    for machine_type, names in sensors.items():
        group = frame[frame["machine_type"] == machine_type]
        for sensor in names:
            missing.loc[machine_type, sensor] = 100.0 * group[f"value__{sensor}"].isna().mean()
    fig, ax = plt.subplots(figsize=(1.2 * len(all_sensors) + 2, 0.7 * len(sensors) + 1.5))
    sns.heatmap(missing, annot=True, fmt=".2f", cmap="Reds", ax=ax, cbar_kws={"label": "% missing"},
                vmin=0, vmax=max(1.0, float(np.nanmax(missing.to_numpy()))))
    ax.set_title("Raw values missing (%), by machine type and sensor (blank: not a sensor of the type)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    plt.setp(ax.get_yticklabels(), rotation=0)
    fig.tight_layout()
    rates = ""
    if "out_of_range" in frame:
        share = frame.groupby("machine_type")["out_of_range"].apply(lambda s: (s > 0).mean() * 100)
        rates = " Readings with an out-of-range value: " + ", ".join(f"{k} {v:.3f}%" for k, v in share.items()) + "."
    return Section("Missing values", "Share of readings without a value, as received." + rates, _png(fig))


def trends_before_failure(frame: pd.DataFrame, sensors: dict[str, list[str]], hours: int = TREND_HOURS) -> Section:
    import matplotlib.pyplot as plt

    ttf = pd.to_numeric(frame.get("time_to_failure_ms"), errors="coerce") / 3_600_000
    near = frame[ttf.notna() & (ttf <= hours)].assign(hours_before=ttf)
    title = f"Sensor trends in the {hours} hours before failures"
    if near.empty:
        return Section(title, "No failures (ground truth or confirmed by operators) in this training set.")
    types = [t for t in sensors if (near["machine_type"] == t).any()]
    fig, axes = plt.subplots(1, len(types), figsize=(5.5 * len(types), 3.8), squeeze=False, sharey=True)
    for ax, machine_type in zip(axes[0], types, strict=True):
        group = near[near["machine_type"] == machine_type]
        bins = np.floor(group["hours_before"]).astype(int)
        for sensor in sensors[machine_type]:
            series = group[f"norm__{sensor}"].groupby(bins).mean()
            ax.plot(-series.index.to_numpy(), series.to_numpy(), marker=".", label=sensor)
        ax.axvline(0, color="black", linewidth=1)
        ax.set_title(f"{machine_type}: {group['machine_id'].nunique()} machine(s) with a failure")
        ax.set_xlabel("hours before failure")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("mean normalized value (z)")
    fig.tight_layout()
    return Section(title, "Mean of each sensor's normalized value per hour before the next failure (0 = failure).",
                   _png(fig))


def label_balance(frame: pd.DataFrame) -> Section:
    import matplotlib.pyplot as plt

    label = frame["failure_within_horizon"].map(lambda v: "censored" if pd.isna(v) else str(int(v)))
    table = pd.crosstab(frame["machine_type"], label)
    table = table.reindex(columns=[c for c in ("0", "1", "censored") if c in table.columns])
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    table.plot.bar(ax=ax, color={"0": "#4c72b0", "1": "#c44e52", "censored": "#bbbbbb"})
    ax.set_ylabel("rows")
    ax.set_xlabel("")
    ax.set_title("failure_within_horizon by machine type")
    plt.setp(ax.get_xticklabels(), rotation=0)
    fig.tight_layout()
    shares = ", ".join(f"{t}: {100 * r.get('1', 0) / max(1, r.sum()):.2f}% positive" for t, r in table.iterrows())
    return Section("Label balance", f"Rows per label. {shares}.", _png(fig))


def build_report(data: Path, sample: int = 200_000) -> Report:
    import matplotlib

    matplotlib.use("Agg")
    frame, manifest = load(data, sample)
    if frame.empty:
        raise UserError(f"the training set in {data} has no rows")
    sensors = sensors_by_type(frame)
    summary: dict[str, Any] = {
        "rows plotted": len(frame),
        "machines": int(frame["machine_id"].nunique()),
        "machine types": ", ".join(sensors),
        "from": pd.to_datetime(frame["ts"].min(), unit="ms", utc=True).isoformat(),
        "to": pd.to_datetime(frame["ts"].max(), unit="ms", utc=True).isoformat(),
    }
    if manifest:
        summary["training rows"] = manifest.get("rows", {}).get("training")
        summary["content hash"] = manifest.get("content_hash")
        summary["feature set version"] = manifest.get("feature_set_version")
        summary["horizon"] = manifest.get("label_definition", {}).get("horizon")
    report = Report(summary=summary)
    report.sections = [distributions(frame, sensors), correlations(frame, sensors), missingness(frame, sensors),
                       trends_before_failure(frame, sensors), label_balance(frame)]
    return report


def render(report: Report) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in report.summary.items())
    parts = []
    for section in report.sections:
        image = ""
        if section.png:
            encoded = base64.b64encode(section.png).decode()
            image = f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
        parts.append(f"<section><h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>{image}"
                     "</section>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Forewarn EDA</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1400px}img{max-width:100%}"
        "table{border-collapse:collapse}th,td{text-align:left;padding:2px 12px;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>Forewarn training set: exploratory analysis</h1>"
        f"<table>{rows}</table>{''.join(parts)}</body></html>\n"
    )


def write(report: Report, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report), encoding="utf-8")
    return out


def mlflow_reachable(tracking_uri: str, timeout_s: float = 3.0) -> bool:
    import httpx

    if not tracking_uri.startswith(("http://", "https://")):
        return True  # a local file store is always there
    try:
        return httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def log_to_mlflow(path: Path, report: Report, tracking_uri: str) -> str:
    """Log the report as an artifact of a run in the ``forewarn-eda`` experiment; returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="eda") as run:
        mlflow.log_params({k.replace(" ", "_"): str(v)[:250] for k, v in report.summary.items()})
        mlflow.log_artifact(str(path), artifact_path="eda")
        return str(run.info.run_id)
