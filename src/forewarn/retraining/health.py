"""The model-health event a retraining run publishes: ``retrain_refused`` active when a challenger was
refused (or the run failed) and the champion stayed, inactive when a later run promoted one, so the
alerter raises the data-science alert and resolves it."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Final

from forewarn.schemas import ModelHealthEvent

CONDITION: Final = "retrain_refused"
SCOPE: Final = "all"


def retrain_health_event(record: dict[str, Any], *, active: bool, now_ms: int | None = None) -> ModelHealthEvent:
    """From a run's record (see :mod:`forewarn.retraining.record`): value = how many reasons it was refused
    for, limit 0 (the condition holds with any reason)."""
    reasons = list(record.get("reasons") or [])
    if record.get("error"):
        reasons = [*reasons, f"the run failed: {record['error']}"]
    candidate = record.get("candidate_version")
    champion = record.get("champion_after")
    if active:
        summary = (f"retraining ({record.get('trigger')}: {record.get('reason')}) did not replace the champion "
                   f"(version {champion or 'none'}): candidate {candidate or 'none'} "
                   f"{'failed' if record.get('error') else 'refused'} because " + "; ".join(reasons)
                   + ". Check the data and the gates: 'forewarn retrain --history'.")
    else:
        summary = f"retraining promoted version {champion} (was {record.get('champion_before') or 'none'})"
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    # The judgement's time is the run's (wall), not the training data's, which ends before the monitor's
    # latest windows: an alerter that orders events by time must not take this one for a stale one.
    started = _epoch_ms(record.get("started_at")) or now
    return ModelHealthEvent(
        event_id=f"retrain:{record['run_id']}:{CONDITION}", condition=CONDITION, scope=SCOPE, active=active,
        value=float(len(reasons)), limit=0.0, model_name=str(record.get("model")),
        model_version=str(candidate) if candidate else None, window=0,
        window_start_ts=min(started, now), window_end_ts=now,
        summary=summary[:2000], sensors=[],
        details={"run_id": record["run_id"], "decision": record.get("decision"), "reasons": reasons,
                 "gates": record.get("gates"), "champion_before": record.get("champion_before"),
                 "champion_after": champion, "dataset_hash": record.get("dataset_hash"),
                 "data_range": record.get("data_range"),
                 "train_run_id": record.get("train_run_id")},
        emitted_at=now,
    )


def _epoch_ms(iso: object) -> int | None:
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except ValueError:
        return None


def publish_health(kafka_settings: Any, event: ModelHealthEvent, timeout_s: float = 10.0) -> str:
    """Best effort, like the audit record: returns what happened, in words."""
    from forewarn import kafka, topics

    topic = kafka_settings.topic(topics.MODEL_HEALTH)
    try:
        delivery = kafka.Delivery(kafka.producer(kafka_settings, extra_config={
            "message.timeout.ms": int(timeout_s * 1000) - 1000, "socket.connection.setup.timeout.ms": 3000}))
        key = f"{event.model_name}:{event.condition}:{event.scope}".encode()
        delivery.produce(topic, event.model_dump_json().encode(), key=key)
        delivery.wait(timeout_s, what="model-health events")
    except Exception as exc:  # noqa: BLE001 - the audit file still records the refusal
        return f"model-health event not sent to {topic!r}: {exc}"
    return f"model-health event ({event.condition} active={event.active}) sent to {topic!r}"
