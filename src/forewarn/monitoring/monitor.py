"""The monitor's window: samples of live vectors and scores in, a judgement per condition out. No I/O, no clock.

The service hands :class:`ModelMonitor` the rows it sampled (``add_vectors``, ``add_scores``) and closes a
window when its time is up (``close_window``). A window keeps at most ``max_rows`` rows per machine type as
a uniform reservoir, so its cost does not grow with the stream's rate. Closing judges data drift per
machine type and the drift of the score distribution against the champion's :class:`Reference`, and
returns one :class:`~forewarn.schemas.ModelHealthEvent` per condition it could judge, active or not (the
alerter's hysteresis needs to see a condition clear), plus a JSON-able summary for the API.

Without a reference (a champion trained before references existed) nothing is judged: the window returns
one ``no_reference`` event that says what to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forewarn.monitoring import drift
from forewarn.monitoring.reference import Reference
from forewarn.schemas import HealthCondition, ModelHealthEvent


@dataclass(frozen=True)
class MonitorConfig:
    model_name: str
    min_rows: int = 200  # rows of a machine type before its drift is judged
    max_rows: int = 2_000  # reservoir per machine type and window
    min_scores: int = 200
    seed: int = 0


@dataclass
class _Reservoir:
    """Uniform sample of at most ``capacity`` rows from everything offered (Vitter's algorithm R, vectorised)."""

    capacity: int
    columns: list[str]
    rng: np.random.Generator
    rows: np.ndarray = field(init=False)
    seen: int = 0

    def __post_init__(self) -> None:
        self.rows = np.empty((0, len(self.columns)))

    def offer(self, block: np.ndarray) -> None:
        free = self.capacity - len(self.rows)
        if free > 0:
            self.rows = np.vstack([self.rows, block[:free]])
            self.seen += min(free, len(block))
            block = block[free:]
        if not len(block):
            return
        # Row k of the stream (0-based) replaces a random slot with probability capacity / (k + 1).
        positions = self.seen + np.arange(len(block))
        slots = (self.rng.random(len(block)) * (positions + 1)).astype(np.int64)
        keep = slots < self.capacity
        self.rows[slots[keep]] = block[keep]  # later rows win ties, as in the sequential algorithm
        self.seen += len(block)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.columns)


@dataclass
class WindowResult:
    window: int
    events: list[ModelHealthEvent]
    drift: drift.WindowDrift
    summary: dict[str, Any]
    current: dict[str, pd.DataFrame]  # the window's sampled rows per machine type (for the HTML report)


def event_id(model_name: str, version: str | None, window: int, condition: str, scope: str) -> str:
    return hashlib.sha256(f"{model_name}|{version}|{window}|{condition}|{scope}".encode()).hexdigest()[:24]


class ModelMonitor:
    def __init__(self, reference: Reference | None, model_version: str | None, config: MonitorConfig) -> None:
        self.reference = reference
        self.model_version = model_version
        self.config = config
        self.window = 0
        self._rng = np.random.default_rng(config.seed)
        # Machines whose latest sampled risk is at or above the model's decision threshold: degrading, which
        # is the model's business, not drift. Kept across windows; a machine leaves when its risk falls.
        self._risky: set[str] = set()
        self._machines: dict[str, set[str]] = {}
        threshold = reference.holdout.get("threshold") if reference is not None else None
        self.risk_threshold = float(threshold) if threshold is not None and np.isfinite(threshold) else 0.5
        self._start()

    def _start(self) -> None:
        self._vectors: dict[str, _Reservoir] = {}
        self._scores = _Reservoir(self.config.max_rows, ["p_failure"], self._rng)
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self.vectors_seen = 0
        self.excluded_rows = 0

    def _times(self, ts: np.ndarray) -> None:
        if ts.size:
            lo, hi = int(ts.min()), int(ts.max())
            self._first_ts = lo if self._first_ts is None else min(self._first_ts, lo)
            self._last_ts = hi if self._last_ts is None else max(self._last_ts, hi)

    def note_risk(self, machine_ids: list[str], p_failure: np.ndarray) -> None:
        """Sampled scores: which machines the model currently calls at risk."""
        for machine, p in zip(machine_ids, np.asarray(p_failure, dtype=np.float64).tolist(), strict=True):
            if p >= self.risk_threshold:
                self._risky.add(machine)
            else:
                self._risky.discard(machine)

    def add_vectors(self, machine_type: str, names: list[str], matrix: np.ndarray, ts: np.ndarray,
                    machine_ids: list[str] | None = None) -> None:
        """Rows of one feature block; only the monitored columns of a type the reference knows are kept.

        With ``machine_ids``, rows of machines the model calls at risk are left out while they are a
        minority of their type: a few degrading machines move a small fleet's medians like a drift (measured),
        and catching them is the model's job. When most of a type is "at risk", that is itself a change of
        the plant (a recalibrated sensor raises every machine's risk), so nothing is left out."""
        self._times(ts)
        if self.reference is None or machine_type not in self.reference.thresholds:
            return
        if machine_ids is not None:
            known = self._machines.setdefault(machine_type, set())
            known.update(machine_ids)
            risky = self._risky & known
            if risky and len(risky) * 2 <= len(known):
                keep = np.array([m not in risky for m in machine_ids], dtype=bool)
                matrix, ts = matrix[keep], ts[keep]
                self.excluded_rows += int((~keep).sum())
        wanted = list(self.reference.thresholds[machine_type])
        index = {n: i for i, n in enumerate(names)}
        columns = [index.get(n, -1) for n in wanted]
        block = np.full((len(matrix), len(wanted)), np.nan)
        for j, i in enumerate(columns):
            if i >= 0:
                block[:, j] = matrix[:, i]
        reservoir = self._vectors.get(machine_type)
        if reservoir is None:
            reservoir = self._vectors[machine_type] = _Reservoir(self.config.max_rows, wanted, self._rng)
        reservoir.offer(block)
        self.vectors_seen += len(matrix)

    def add_scores(self, p_failure: np.ndarray, ts: np.ndarray) -> None:
        self._times(ts)
        self._scores.offer(np.asarray(p_failure, dtype=np.float64).reshape(-1, 1))

    def close_window(self, now_ms: int) -> WindowResult:
        window = self.window
        current = {t: r.frame() for t, r in self._vectors.items()}
        scores = self._scores.rows[:, 0].copy()
        start_ts = self._first_ts if self._first_ts is not None else now_ms
        end_ts = self._last_ts if self._last_ts is not None else now_ms
        seen = self.vectors_seen
        excluded = self.excluded_rows
        risky = len(self._risky)
        self.window += 1
        self._start()
        result = drift.WindowDrift()
        events: list[ModelHealthEvent] = []

        def event(condition: HealthCondition, scope: str, active: bool, value: float, limit: float, summary: str,
                  sensors: list[str] | None = None, details: dict[str, Any] | None = None) -> None:
            events.append(ModelHealthEvent(
                event_id=event_id(self.config.model_name, self.model_version, window, condition, scope),
                condition=condition, scope=scope, active=active, value=float(value), limit=float(limit),
                model_name=self.config.model_name, model_version=self.model_version, window=window,
                window_start_ts=start_ts, window_end_ts=end_ts, summary=summary, sensors=sensors or [],
                details=details or {}, emitted_at=now_ms))

        reference = self.reference
        if reference is None:
            event("no_reference", "all", True, 0.0, 0.0,
                  f"champion {self.config.model_name} version {self.model_version} has no monitoring reference "
                  "(trained before references existed): drift and decay are not judged; retrain it with "
                  "'forewarn train' and promote the new version")
            return WindowResult(window, events, result, self._summary(window, start_ts, end_ts, seen, result,
                                                                      events), current)
        event("no_reference", "all", False, 1.0, 0.0,
              f"champion {self.config.model_name} version {self.model_version} has its monitoring reference")
        for type_name in reference.machine_types:
            frame = current.get(type_name, pd.DataFrame(columns=list(reference.thresholds[type_name])))
            judged = drift.type_drift(type_name, reference.features[type_name], frame,
                                      reference.thresholds[type_name], self.config.min_rows)
            result.types[type_name] = judged
            if not judged.judged:
                continue
            top = sorted(judged.drifted, key=lambda f: -f.score / f.threshold)[:8]
            details = {"features": {f.feature: {"score": f.score, "threshold": f.threshold} for f in top},
                       "drifted_features": len(judged.drifted), "monitored_features": len(judged.features),
                       "rows": judged.rows}
            if judged.active:
                summary = (f"data drift on {type_name}: {', '.join(judged.sensors)} "
                           f"({len(judged.drifted)} of {len(judged.features)} monitored features drifted); "
                           "check those sensors' calibration, or retrain if the plant changed on purpose")
            else:
                summary = f"no data drift on {type_name} ({judged.rows} sampled vectors)"
            event("data_drift", type_name, judged.active, judged.share, 1.0 / max(len(judged.features), 1),
                  summary, judged.sensors, details)
        result.scores = drift.score_drift(reference.scores, scores, reference.score_threshold,
                                          self.config.min_scores)
        if result.scores.judged:
            s = result.scores
            event("score_drift", "all", s.active, s.score, s.threshold,
                  (f"the risk score distribution moved (distance {s.score:.3f}, limit {s.threshold:.3f}): the model "
                   "sees a different plant than it was trained on" if s.active else
                   f"score distribution as in training (distance {s.score:.3f})"),
                  details={"rows": s.rows, "mean_live": float(np.mean(scores)) if scores.size else None,
                           "mean_reference": float(np.mean(reference.scores)) if reference.scores.size else None})
        window_summary = self._summary(window, start_ts, end_ts, seen, result, events)
        window_summary.update({"rows_of_machines_at_risk_left_out": excluded, "machines_at_risk": risky})
        return WindowResult(window, events, result, window_summary, current)

    def _summary(self, window: int, start_ts: int, end_ts: int, seen: int, result: drift.WindowDrift,
                 events: list[ModelHealthEvent]) -> dict[str, Any]:
        return {
            "window": window, "model_name": self.config.model_name, "model_version": self.model_version,
            "reference": self.reference is not None, "window_start_ts": start_ts, "window_end_ts": end_ts,
            "vectors_sampled": seen,
            "machine_types": {t: d.as_dict() for t, d in result.types.items()},
            "scores": None if result.scores is None else {
                "rows": result.scores.rows, "score": result.scores.score if np.isfinite(result.scores.score) else None,
                "threshold": result.scores.threshold, "judged": result.scores.judged, "active": result.scores.active},
            "conditions": [{"condition": e.condition, "scope": e.scope, "active": e.active, "value": e.value,
                            "summary": e.summary, "sensors": e.sensors} for e in events],
        }
