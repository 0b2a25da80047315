"""Labels from what really happened: failure within the horizon, and remaining useful life (RUL).

Events per machine come from ground truth (``failure``, ``maintenance``) and operator feedback
(``confirmed_failure`` at its ``failure_ts``; ``false_alarm`` over its alert window). A machine's life
runs from one maintenance to the next; a failure belongs to the life it happens in, so maintenance
resets the labels: a reading is positive only when the next failure comes within the horizon and
before the next maintenance. See :meth:`forewarn.etl.spec.BuildSpec.label_definition`.

``data_end_ts`` (the latest event time in the lake) bounds what was observed: a reading whose horizon
reaches past it with no failure and no maintenance in between is censored (null), not negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forewarn.etl.spec import HOUR_MS, BuildSpec

LABEL = "failure_within_horizon"
LABEL_COLUMNS = (LABEL, "rul", "time_to_failure_ms", "label_source")
EVENT_COLUMNS = ("machine_id", "kind", "ts", "end_ts")
FAILURE_KINDS = ("failure", "confirmed_failure")


@dataclass
class MachineEvents:
    failures: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # sorted, unique
    failure_kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    maintenance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # sorted
    false_alarms: list[tuple[int, int]] = field(default_factory=list)


def events_by_machine(events: pd.DataFrame) -> dict[str, MachineEvents]:
    """``events``: machine_id, kind (failure | confirmed_failure | maintenance | false_alarm), ts, end_ts."""
    out: dict[str, MachineEvents] = {}
    if events is None or events.empty:
        return out
    frame = events.dropna(subset=["machine_id", "ts"])
    for machine_id, group in frame.groupby("machine_id", sort=False):
        item = MachineEvents()
        failures = group[group["kind"].isin(FAILURE_KINDS)]
        failures = failures.assign(_rank=failures["kind"].map(FAILURE_KINDS.index))
        failures = failures.sort_values(["ts", "_rank"], kind="stable")
        failures = failures.drop_duplicates("ts", keep="first")  # ground truth wins a tie with feedback
        item.failures = failures["ts"].to_numpy(dtype=np.int64)
        item.failure_kinds = failures["kind"].to_numpy(dtype=object)
        item.maintenance = np.unique(group.loc[group["kind"] == "maintenance", "ts"].to_numpy(dtype=np.int64))
        alarms = group[(group["kind"] == "false_alarm") & group["end_ts"].notna()]
        item.false_alarms = [(int(s), int(e)) for s, e in zip(alarms["ts"], alarms["end_ts"], strict=True)]
        out[str(machine_id)] = item
    return out


def reset_rows(arrival_ts: np.ndarray, maintenance: np.ndarray) -> np.ndarray:
    """Feature resets for one machine: before the first reading (arrival order) at or after each
    maintenance."""
    resets = np.zeros(len(arrival_ts), dtype=bool)
    for moment in np.asarray(maintenance).tolist():
        after = np.flatnonzero(arrival_ts >= moment)
        if len(after):
            resets[after[0]] = True
    return resets


def label(frame: pd.DataFrame, events: dict[str, MachineEvents], spec: BuildSpec, data_end_ts: int
          ) -> pd.DataFrame:
    """Label columns for ``frame`` (``machine_id``, ``ts``: the training rows), aligned to its index."""
    out = pd.DataFrame(index=frame.index)
    out[LABEL] = pd.array([pd.NA] * len(frame), dtype="Int32")
    out["rul"] = np.nan
    out["time_to_failure_ms"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    out["label_source"] = pd.Series(["censored"] * len(frame), index=frame.index, dtype=object)
    empty = MachineEvents()
    for machine_id, group in frame.groupby("machine_id", sort=False):
        order = group.sort_values("ts", kind="stable")
        result = _label_machine(order["ts"].to_numpy(dtype=np.int64), events.get(str(machine_id), empty), spec,
                                data_end_ts)
        index = order.index
        out.loc[index, LABEL] = pd.array(result["label"], dtype="Int32")
        out.loc[index, "rul"] = result["rul"]
        out.loc[index, "time_to_failure_ms"] = pd.array(result["ttf"], dtype="Int64")
        out.loc[index, "label_source"] = result["source"]
    return out


def _label_machine(t: np.ndarray, ev: MachineEvents, spec: BuildSpec, data_end_ts: int) -> dict[str, object]:
    n = len(t)
    inf = np.iinfo(np.int64).max
    fi = np.searchsorted(ev.failures, t, side="left")
    has_f = fi < len(ev.failures)
    f = np.where(has_f, ev.failures[np.minimum(fi, len(ev.failures) - 1)] if len(ev.failures) else 0, inf)
    kinds = np.where(has_f, ev.failure_kinds[np.minimum(fi, len(ev.failures) - 1)] if len(ev.failures) else "",
                     "")
    mi = np.searchsorted(ev.maintenance, t, side="right")
    has_m = mi < len(ev.maintenance)
    m = np.where(has_m, ev.maintenance[np.minimum(mi, len(ev.maintenance) - 1)] if len(ev.maintenance) else 0,
                 inf)
    in_life = has_f & (f <= m)
    horizon = spec.horizon
    if horizon.in_cycles:
        position = np.arange(n)
        to_failure = np.searchsorted(t, np.where(in_life, f, 0), side="right") - (position + 1)
        observed_end = np.where(has_m, np.searchsorted(t, m, side="left"),
                                np.searchsorted(t, data_end_ts, side="right"))
        observed = observed_end - (position + 1)
        limit = float(horizon.cycles)  # type: ignore[arg-type]
        distance = to_failure.astype(float)
        bound = observed.astype(float)
    else:
        limit = float(horizon.ms)  # type: ignore[arg-type]
        distance = (f - t).astype(float)
        bound = (np.where(has_m, m, data_end_ts) - t).astype(float)
    positive = in_life & (distance <= limit)
    negative = ~positive & (in_life | has_m | (bound >= limit))
    labels = np.where(positive, 1.0, np.where(negative, 0.0, np.nan))
    source = np.where(positive, kinds, np.where(
        in_life, "no_failure", np.where(has_m, "maintenance", np.where(negative, "no_failure", "censored"))))
    source = source.astype(object)
    for start, end in ev.false_alarms:
        window = (t >= start) & (t <= end) & ~positive
        labels[window] = 0.0
        source[window] = "false_alarm"

    unit = 1.0 if horizon.in_cycles else float(HOUR_MS)
    rul = np.where(in_life, distance / unit, np.nan)
    cap = spec.rul_cap
    if cap is not None:
        rul = np.where(in_life, np.minimum(rul, cap), np.where(bound / unit >= cap, cap, np.nan))
    ttf = [int(v) if ok else pd.NA for v, ok in zip((f - t).tolist(), in_life.tolist(), strict=True)]
    return {
        "label": [pd.NA if np.isnan(v) else int(v) for v in labels.tolist()],
        "rul": rul,
        "ttf": ttf,
        "source": source,
    }
