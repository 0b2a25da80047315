"""The monitor's work loop: sample, close windows, judge, publish, report; reset on a new champion.

Typed against small callables and objects so the whole loop runs in unit tests with fakes:
``champion()`` answers the serving version, ``load_reference(version)`` its reference (or None);
samplers return Kafka messages; ``publish(events)`` puts model-health events on their topic and
returns once the broker has them; ``reports`` logs Evidently HTML to MLflow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from forewarn import scores_wire, vector_codec
from forewarn.monitoring.monitor import ModelMonitor, MonitorConfig, WindowResult
from forewarn.monitoring.reference import Reference
from forewarn.schemas import ModelHealthEvent
from forewarn.services.monitor.metrics import MonitorMetrics
from forewarn.services.monitor.settings import MonitorOptions

log = logging.getLogger(__name__)


class Sampler(Protocol):
    def sample(self) -> list[Any]: ...


class Reports(Protocol):
    def log(self, result: WindowResult, reference: Reference, version: str) -> str | None: ...


class WindowObserver(Protocol):
    """Called after every window (the decay judge, the retraining trigger)."""

    def __call__(self, result: WindowResult) -> list[ModelHealthEvent]: ...


class MonitorService:
    def __init__(self, options: MonitorOptions, metrics: MonitorMetrics, *, model_name: str,
                 champion: Callable[[], str | None], load_reference: Callable[[str], Reference | None],
                 vectors: Sampler, scores: Sampler, publish: Callable[[list[ModelHealthEvent]], None],
                 reports: Reports | None = None, observers: list[WindowObserver] | None = None,
                 on_champion: Callable[[str, Reference | None], None] | None = None,
                 score_sink: Callable[[list[dict[str, Any]]], None] | None = None,
                 after_window: Callable[[WindowResult, list[ModelHealthEvent]], None] | None = None,
                 clock: Callable[[], float] = time.time, seed: int = 0) -> None:
        self.options = options
        self.metrics = metrics
        self.model_name = model_name
        self._champion = champion
        self._load_reference = load_reference
        self.vectors = vectors
        self.scores = scores
        self.publish = publish
        self.reports = reports
        self.observers = list(observers or [])
        self.on_champion = on_champion
        self.score_sink = score_sink  # the decay tracker sees the same sampled scores
        self.after_window = after_window  # the retraining trigger: sees every condition of the window
        self.clock = clock
        self._rng = np.random.default_rng(seed)
        self.monitor: ModelMonitor | None = None
        self.version: str | None = None
        self.reference: Reference | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=options.history)
        self.stop = threading.Event()
        self.not_ready_reason = "starting: the champion is not known yet"
        self._window_started = clock()
        self._checked_champion = 0.0
        self._drifting: dict[str, bool] = {}
        self._report_owed = False
        self._last_report_at: float | None = None
        self.lock = threading.Lock()  # the API reads history and state while the loop runs

    # --- champion and reference ------------------------------------------------------------------

    def refresh_champion(self) -> bool:
        """Look the champion up; a new version replaces the reference and starts a fresh window."""
        self._checked_champion = self.clock()
        try:
            version = self._champion()
        except Exception as exc:  # noqa: BLE001 - the registry being away must not stop the loop
            self.not_ready_reason = f"cannot reach the model registry: {exc}"
            log.warning("champion lookup failed: %s", exc)
            return False
        if version is None:
            self.not_ready_reason = (f"no champion of {self.model_name} yet: train and promote one "
                                     "('forewarn train', 'forewarn promote')")
            return False
        if version == self.version and self.monitor is not None:
            return False
        reference = self._load_reference(version)
        with self.lock:
            self.version, self.reference = version, reference
            self.monitor = ModelMonitor(reference, version, MonitorConfig(
                model_name=self.model_name, min_rows=self.options.min_rows, max_rows=self.options.max_rows,
                min_scores=self.options.min_scores))
            self._window_started = self.clock()
            self._drifting = {}
            self._report_owed, self._last_report_at = False, None
        if self.on_champion is not None:
            self.on_champion(version, reference)
        self.not_ready_reason = ""
        self.metrics.reference_present.set(1.0 if reference is not None else 0.0)
        for key, value in (reference.holdout if reference else {}).items():
            if np.isfinite(value):
                self.metrics.holdout_figure.labels(key).set(value)
        log.info("monitoring %s version %s (%s)", self.model_name, version,
                 "with its reference" if reference is not None else "NO reference: nothing is judged")
        return True

    # --- sampling --------------------------------------------------------------------------------

    def _take(self, count: int) -> np.ndarray:
        want = self.options.rows_per_block
        return np.arange(count) if count <= want else np.sort(self._rng.choice(count, want, replace=False))

    def sample_once(self) -> int:
        monitor = self.monitor
        if monitor is None:
            return 0
        # Scores first: they say which machines are at risk before their vectors are kept.
        scored = 0
        for message in self.scores.sample():
            try:
                documents = scores_wire.decode_value(message.value())
            except Exception as exc:  # noqa: BLE001
                log.warning("undecodable score envelope: %s", exc)
                continue
            monitor.note_risk([str(d["machine_id"]) for d in documents],
                              np.array([float(d["p_failure"]) for d in documents]))
            taken_documents = [documents[i] for i in self._take(len(documents))]
            p = np.array([float(d["p_failure"]) for d in taken_documents])
            ts = np.array([int(d["ts"]) for d in taken_documents], dtype=np.int64)
            monitor.add_scores(p, ts)
            if self.score_sink is not None:
                self.score_sink(taken_documents)
            scored += len(taken_documents)
        self.metrics.sampled.labels("scores").inc(scored)
        taken = 0
        for message in self.vectors.sample():
            try:
                block = vector_codec.decode(message.value())
            except Exception as exc:  # noqa: BLE001 - a bad block is skipped, the next sample comes soon
                log.warning("undecodable vector block: %s", exc)
                continue
            rows = self._take(len(block))
            monitor.add_vectors(block.machine_type, block.names, block.matrix[rows], block.ts[rows],
                                [block.machine_ids[i] for i in rows])
            taken += len(rows)
        self.metrics.sampled.labels("vectors").inc(taken)
        return taken + scored

    # --- windows ---------------------------------------------------------------------------------

    def close_window(self) -> WindowResult | None:
        monitor = self.monitor
        if monitor is None:
            return None
        now = self.clock()
        with self.lock:
            result = monitor.close_window(int(now * 1000))
            self._window_started = now
        result.summary["closed_at"] = int(now * 1000)
        events = list(result.events)
        for observer in self.observers:
            events.extend(observer(result))
        self.publish(events)
        self._observe(result, events)
        if self.after_window is not None:
            self.after_window(result, events)
        self._report(result, events)
        with self.lock:
            self.history.append({**result.summary, "conditions": [
                {"condition": e.condition, "scope": e.scope, "active": e.active, "value": e.value,
                 "limit": e.limit, "summary": e.summary, "sensors": e.sensors} for e in events]})
        return result

    def _observe(self, result: WindowResult, events: list[ModelHealthEvent]) -> None:
        m = self.metrics
        m.windows.inc()
        for type_name, judged in result.drift.types.items():
            if not judged.judged:
                continue
            m.drift_share.labels(type_name).set(judged.share)
            for feature in judged.features:
                if np.isfinite(feature.score):
                    m.feature_drift.labels(type_name, feature.feature).set(feature.score)
                m.feature_drift_threshold.labels(type_name, feature.feature).set(feature.threshold)
        if result.drift.scores is not None and np.isfinite(result.drift.scores.score):
            m.score_drift.set(result.drift.scores.score)
        for e in events:
            m.condition.labels(e.condition, e.scope).set(1.0 if e.active else 0.0)
            m.events.labels(e.condition, str(e.active).lower()).inc()

    def _report(self, result: WindowResult, events: list[ModelHealthEvent]) -> None:
        if self.reports is None or self.reference is None or self.version is None:
            return
        drifting = {e.scope: e.active for e in events if e.condition == "data_drift"}
        changed = any(drifting.get(t, False) != self._drifting.get(t, False) for t in drifting)
        periodic = self.options.report_every > 0 and result.window % self.options.report_every == 0
        self._drifting.update(drifting)
        self._report_owed = self._report_owed or changed or periodic
        now = self.clock()
        if not self._report_owed:
            return
        if self._last_report_at is not None and now - self._last_report_at < self.options.report_min_interval_s:
            result.summary["report_deferred"] = True  # owed: the first window after the interval logs it
            return
        self._report_owed = False
        self._last_report_at = now
        try:
            run_id = self.reports.log(result, self.reference, self.version)
        except Exception as exc:  # noqa: BLE001 - a report is for people; the judgement is already out
            log.warning("could not log the drift report to MLflow: %s", exc)
            return
        if run_id:
            result.summary["report_run_id"] = run_id

    # --- the loop --------------------------------------------------------------------------------

    def step(self) -> WindowResult | None:
        now = self.clock()
        if self.monitor is None or now - self._checked_champion >= self.options.reference_poll_s:
            self.refresh_champion()
        self.sample_once()
        if self.monitor is not None and self.clock() - self._window_started >= self.options.window_s:
            return self.close_window()
        return None

    def run(self) -> None:
        from forewarn.monitoring import drift

        drift.warm_up()  # Evidently takes seconds to import: before the first window, not in it
        while not self.stop.is_set():
            started = self.clock()
            self.step()
            self.stop.wait(max(0.0, self.options.sample_interval_s - (self.clock() - started)))

    def latest(self) -> dict[str, Any] | None:
        with self.lock:
            return self.history[-1] if self.history else None
