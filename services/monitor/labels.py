"""What the system learns late: alerts, operator feedback and ground truth, joined to judge model decay.

:class:`LabelStream` consumes ``alerts``, ``feedback`` and ``ground.truth`` (small topics: every event,
in a consumer group, on the shared :class:`forewarn.kafka.BatchLoop`) into the champion's
:class:`~forewarn.monitoring.decay.DecayTracker`; the sampled scores reach the same tracker from the
window loop. :class:`DecayJudge` runs after each window and turns the tracker's judged checks into
model-health events. A new champion gets a new tracker: alerts of another model version are not its own.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import orjson

from forewarn import kafka, topics
from forewarn.alerting.model_health import is_model_health
from forewarn.monitoring.decay import DecayReport, DecaySettings, DecayTracker, HoldoutFigures
from forewarn.monitoring.monitor import WindowResult, event_id
from forewarn.monitoring.reference import Reference
from forewarn.schemas import AlertEvent, FeedbackEvent, GroundTruthEvent, ModelHealthEvent
from forewarn.services.monitor.metrics import MonitorMetrics

log = logging.getLogger(__name__)


class LabelBook:
    """The champion's tracker behind a lock (the label thread writes, the window loop judges)."""

    def __init__(self, settings: DecaySettings | None = None) -> None:
        self.settings = settings or DecaySettings()
        self.lock = threading.Lock()
        self.tracker: DecayTracker | None = None
        self.version: str | None = None
        self.new_labels = 0  # feedback and failures since the champion was set (the retraining trigger reads it)
        self.label_events = 0  # any feedback or ground truth: without a label source nothing is judged
        self.last: DecayReport | None = None

    def reset(self, version: str, reference: Reference | None) -> None:
        with self.lock:
            self.version, self.new_labels, self.label_events, self.last = version, 0, 0, None
            horizon = reference.horizon_ms if reference is not None else None
            self.tracker = (DecayTracker(horizon, HoldoutFigures.from_mapping(reference.holdout), self.settings)
                            if reference is not None and horizon else None)

    def observe(self, event: AlertEvent | FeedbackEvent | GroundTruthEvent) -> None:
        with self.lock:
            if self.tracker is None:
                return
            if isinstance(event, AlertEvent | FeedbackEvent) and is_model_health(event.machine_type):
                return  # alerts about the model itself are not predictions of failures
            if isinstance(event, AlertEvent) and event.model_version not in (None, self.version):
                return
            self.tracker.observe(event)
            if not isinstance(event, AlertEvent):
                self.label_events += 1
            if isinstance(event, FeedbackEvent) or (isinstance(event, GroundTruthEvent) and event.kind == "failure"):
                self.new_labels += 1

    def add_scores(self, documents: list[dict[str, Any]]) -> None:
        with self.lock:
            if self.tracker is None or not documents:
                return
            self.tracker.add_scores([d["machine_id"] for d in documents],
                                    [d.get("machine_type", "") for d in documents],
                                    [int(d["ts"]) for d in documents], [float(d["p_failure"]) for d in documents])

    def judge(self, now_ts: int) -> DecayReport | None:
        with self.lock:
            if self.tracker is None:
                return None
            self.last = self.tracker.judge(now_ts)
            return self.last


class DecayJudge:
    """A window observer: the decay checks the tracker could judge, as model-health events."""

    def __init__(self, book: LabelBook, model_name: str, metrics: MonitorMetrics) -> None:
        self.book = book
        self.model_name = model_name
        self.metrics = metrics

    def __call__(self, result: WindowResult) -> list[ModelHealthEvent]:
        report = self.book.judge(result.summary["window_end_ts"])
        if report is None:
            return []
        for gauge, value in ((self.metrics.live_precision, report.precision.precision),
                             (self.metrics.live_recall, report.recall.recall),
                             (self.metrics.live_calibration_error, report.calibration.calibration_error),
                             (self.metrics.predicted_precision, report.predicted.predicted_precision)):
            if value is not None and np.isfinite(value):
                gauge.set(value)
        result.summary["decay"] = report.as_dict()
        events: list[ModelHealthEvent] = []
        if self.book.label_events == 0:
            # No feedback and no ground truth has arrived: every outcome would read "no failure", which
            # says nothing about the model. Figures stay visible in the summary; no condition is raised.
            return events
        for check in report.checks:
            if not check.judged or check.limit is None:
                continue  # too few labels yet, or no holdout figure to compare with: nothing to claim
            events.append(ModelHealthEvent(
                event_id=event_id(self.model_name, self.book.version, result.window, check.condition, "all"),
                condition=check.condition, scope="all", active=check.decayed, value=float(check.value),
                limit=float(check.limit), model_name=self.model_name, model_version=self.book.version,
                window=result.window, window_start_ts=result.summary["window_start_ts"],
                window_end_ts=result.summary["window_end_ts"], summary=check.summary,
                details={"events": check.events, "minimum": check.minimum, "holdout": check.holdout},
                emitted_at=int(result.summary.get("closed_at", result.summary["window_end_ts"]))))
        return events


LabelModel = type[AlertEvent] | type[FeedbackEvent] | type[GroundTruthEvent]


def _decode(raw: bytes) -> Any:
    return orjson.loads(raw)


class LabelStream:
    """alerts + feedback + ground.truth -> the label book, committed after each batch."""

    def __init__(self, settings: Any, group_id: str, book: LabelBook, metrics: MonitorMetrics) -> None:
        self.settings = settings
        self.group_id = group_id
        self.book = book
        self.metrics = metrics
        self.stop = threading.Event()
        self._by_topic: dict[str, LabelModel] = {settings.kafka.topic(topics.ALERTS): AlertEvent,
                          settings.kafka.topic(topics.FEEDBACK): FeedbackEvent,
                          settings.kafka.topic(topics.GROUND_TRUTH): GroundTruthEvent}

    def handle(self, items: list[kafka.Decoded[Any]]) -> None:
        for item in items:
            model = self._by_topic.get(item.topic)
            if model is None:
                continue
            try:
                event = model.model_validate(item.value)
            except ValueError as exc:
                log.warning("skipping an unreadable %s event: %s", item.topic, exc)
                continue
            self.book.observe(event)
            self.metrics.labels.labels(model.__name__).inc()

    def run(self) -> None:
        consumer = kafka.consumer(self.settings.kafka, group_id=self.group_id,
                                  extra_config={"auto.offset.reset": "latest"})
        consumer.subscribe(list(self._by_topic))
        loop: kafka.BatchLoop[Any] = kafka.BatchLoop(consumer, _decode, self.handle, batch_size=1000,
                                                     poll_timeout_s=0.5, on_failure="rewind")
        try:
            loop.run(self.stop)
        finally:
            consumer.close()
