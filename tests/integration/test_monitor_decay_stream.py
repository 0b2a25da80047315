"""Model decay from late labels on the real broker: the monitor's LabelStream consumes prefixed ``alerts``,
``feedback`` and ``ground.truth`` into the champion's LabelBook; after a window, the DecayJudge turns the
live precision (mostly false alarms) into an active, judged ``precision_decay`` event. Alerts and feedback
about the model itself (machine type ``model_health``) are not predictions of failures and are skipped."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from forewarn import kafka, topics
from forewarn.alerting.model_health import MODEL_HEALTH_TYPE
from forewarn.monitoring.drift import WindowDrift
from forewarn.monitoring.monitor import WindowResult
from forewarn.monitoring.reference import build_reference
from forewarn.schemas import AlertEvent, AlertWindow, FeedbackEvent, FeedbackKind
from forewarn.services.monitor.labels import DecayJudge, LabelBook, LabelStream
from forewarn.services.monitor.metrics import MonitorMetrics
from forewarn.services.monitor.settings import MonitorSettings

pytestmark = pytest.mark.timeout(120)

H = 3_600_000
T0 = 1_767_225_600_000
MODEL = "forewarn-failure"
ALERTS, FALSE_ALARMS = 30, 24


def alert(alert_id: str, machine: str, opened: int, machine_type: str = "pump") -> AlertEvent:
    return AlertEvent(
        event_id=f"{alert_id}.1", action="trigger", alert_id=alert_id, revision=1, dedup_key=f"{machine}:failure",
        machine_id=machine, machine_type=machine_type, mode="failure", state="triggered", previous_state="pending",
        reason="p_failure high", severity="warning", p_failure=0.8, peak_p=0.8, model_version="1", ts=opened,
        opened_ts=opened, emitted_at=opened)


def feedback(alert_id: str, machine: str, opened: int, kind: FeedbackKind, machine_type: str = "pump",
             failure_ts: int | None = None) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"{alert_id}.2.feedback", kind=kind, alert_id=alert_id, dedup_key=f"{machine}:failure",
        machine_id=machine, machine_type=machine_type, failure_ts=failure_ts,
        alert_window=AlertWindow(start_ts=opened, end_ts=opened + H), alert_state="acknowledged",
        received_at=opened + 2 * H)


def _applied(registry: CollectorRegistry, kind: str) -> float:
    return registry.get_sample_value("forewarn_monitor_labels_total", {"kind": kind}) or 0.0


def test_decay_is_judged_from_late_labels_and_model_health_alerts_are_skipped(stack: Any, uid: str) -> None:
    started = time.monotonic()
    prefix = f"test.{uid}."
    settings = MonitorSettings(kafka=stack.settings.kafka.model_copy(update={"topic_prefix": prefix}))
    alerts_topic, feedback_topic = settings.kafka.topic(topics.ALERTS), settings.kafka.topic(topics.FEEDBACK)
    stack.ensure_topics([alerts_topic, feedback_topic, settings.kafka.topic(topics.GROUND_TRUTH)], partitions=2)

    rng = np.random.default_rng(3)
    history = pd.DataFrame({"machine_type": ["pump"] * 2000, "ts": T0 - 2000 * 60_000 + np.arange(2000) * 60_000,
                            "vibration__10m__mean": rng.normal(4.0, 0.3, 2000)})
    reference = build_reference(history, features_by_type={"pump": ["vibration__10m__mean"]},
                                holdout_prob=rng.beta(1.0, 8.0, 2000), holdout={"precision": 0.9}, horizon="12h")
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    book = LabelBook()
    book.reset("1", reference)
    stream = LabelStream(settings, f"monitor-{uid}", book, metrics)
    worker = threading.Thread(target=stream.run, daemon=True)
    worker.start()
    producer = kafka.producer(settings.kafka)

    def produce(topic: str, events: list[AlertEvent] | list[FeedbackEvent]) -> None:
        delivery = kafka.Delivery(producer)
        for event in events:
            delivery.produce(topic, event.model_dump_json().encode(), key=event.machine_id.encode())
        delivery.wait(30.0, what="label events")

    try:
        # The stream starts at the latest offsets once assigned: model-health alerts are produced until one
        # is applied (so the stream is assigned), and each must leave the book as it was.
        probes, deadline = 0, time.monotonic() + 60
        while _applied(registry, "AlertEvent") == 0 and time.monotonic() < deadline:
            probes += 1
            produce(alerts_topic, [alert(f"model-{probes}", MODEL, T0, machine_type=MODEL_HEALTH_TYPE)])
            time.sleep(0.5)
        assert _applied(registry, "AlertEvent") > 0, "the label stream never consumed"
        produce(feedback_topic, [feedback("model-1", MODEL, T0, "false_alarm", machine_type=MODEL_HEALTH_TYPE)])

        opened = [T0 + i * H for i in range(ALERTS)]
        produce(alerts_topic, [alert(f"a{i}", f"pump-{i:03d}", ts) for i, ts in enumerate(opened)])
        produce(feedback_topic, [
            feedback(f"a{i}", f"pump-{i:03d}", ts, "false_alarm") if i < FALSE_ALARMS else
            feedback(f"a{i}", f"pump-{i:03d}", ts, "confirmed_failure", failure_ts=ts + 2 * H)
            for i, ts in enumerate(opened)])
        applied_alerts = _applied(registry, "AlertEvent")
        deadline = time.monotonic() + 60
        while (book.tracker is not None and book.tracker.sizes["alerts"] < ALERTS
               or _applied(registry, "FeedbackEvent") < ALERTS + 1) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stream.stop.set()
        worker.join(timeout=30)
        producer.flush(10)
    assert not worker.is_alive()
    assert book.tracker is not None
    # every model-health alert and feedback was consumed and skipped: only the 30 machine alerts are held
    assert applied_alerts >= 1 and _applied(registry, "FeedbackEvent") == ALERTS + 1
    assert book.tracker.sizes["alerts"] == ALERTS
    assert book.new_labels == ALERTS  # the model-health feedback is no label

    end = opened[-1] + H
    window = WindowResult(window=0, events=[], drift=WindowDrift(), current={},
                          summary={"window": 0, "window_start_ts": T0, "window_end_ts": end, "closed_at": end})
    events = DecayJudge(book, MODEL, metrics)(window)
    precision = [e for e in events if e.condition == "precision_decay"]
    assert len(precision) == 1, [(e.condition, e.active) for e in events]
    event = precision[0]
    assert event.active and event.scope == "all" and event.model_version == "1"
    assert event.value == pytest.approx((ALERTS - FALSE_ALARMS) / ALERTS)
    assert event.limit == pytest.approx(0.9 - 0.15)
    assert event.details["events"] == ALERTS and event.details["holdout"] == pytest.approx(0.9)
    assert registry.get_sample_value("forewarn_live_precision") == pytest.approx(0.2)
    assert window.summary["decay"]["precision"]["precision"] == pytest.approx(0.2)
    print(f"\nprecision_decay: {event.summary} ({time.monotonic() - started:.1f} s)")
