"""Model-health alerts on the real stack: the monitor's judgements on ``model.health`` (random topic prefix)
through the real alerter loop, Redis and Kafka, to the data-science Slack webhook: one trigger after two
active windows, one resolve after two clear ones, on the alerts topic and in the channel; no page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.integration.test_alerter_pipeline import POLICY, Env, Running

from forewarn import topics
from forewarn.alerting.model_health import MODEL_HEALTH_TYPE
from forewarn.schemas import ModelHealthEvent
from forewarn.services.alerter.bootstrap import bootstrap
from receivers import SlackReceiver

pytestmark = pytest.mark.timeout(60)

T0 = 1_767_225_600_000
WINDOW = 60_000
DRIFT = ("data drift on pump: vibration, temperature drifted (share 0.31 of monitored features); see the "
         "Evidently report in MLflow")


def judgement(window: int, active: bool, condition: str = "data_drift") -> ModelHealthEvent:
    return ModelHealthEvent(
        event_id=f"forewarn-failure.3.{condition}.pump.{window}", condition=condition,
        scope="pump", active=active, value=0.31 if active else 0.04, limit=0.25, model_name="forewarn-failure",
        model_version="3", window=window, window_start_ts=T0 + window * WINDOW,
        window_end_ts=T0 + (window + 1) * WINDOW - 1,
        summary=DRIFT if active else "no data drift on pump (share 0.04 < 0.25)",
        sensors=["vibration", "temperature"] if active else [],
        details={"drifted_features": {"vibration_rms_1m": 0.7}} if active else {}, emitted_at=T0,
    )


@pytest.fixture
def env(stack: Any, uid: str, tmp_path: Path) -> Iterator[Env]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)  # machine policy of the pipeline tests; model_health: the built-in one
    environment = Env(stack, uid, path)
    yield environment
    environment.close()


def test_model_health_judgements_alert_the_data_science_channel_and_resolve(env: Env) -> None:
    with SlackReceiver() as data_science:
        alerter = bootstrap(env.settings(slack_data_science_webhook_url=data_science.url))
        # active, then the same window re-published, active (trigger), a clear one (no resolve yet), active,
        # two clear (resolve); score drift judged beside it stays clear throughout
        windows = [(0, True), (0, True), (1, True), (2, False), (3, True), (4, False), (5, False)]
        with Running(alerter) as running:
            for window, active in windows:
                for event in (judgement(window, active), judgement(window, False, "score_drift")):
                    env.producer.produce(env.kafka.topic(topics.MODEL_HEALTH), key=event.model_name,
                                         value=event.model_dump_json())
            assert env.producer.flush(30) == 0
            assert data_science.wait_for(lambda messages: len(messages) >= 2), data_science.requests
            running.settle()
            alert_events = env.read(topics.ALERTS, until=lambda r: len(r) >= 2, settle_s=1.0)

    assert [(e["action"], e["mode"], e["machine_type"]) for e in alert_events] == [
        ("trigger", "data_drift", MODEL_HEALTH_TYPE), ("resolve", "data_drift", MODEL_HEALTH_TYPE)]
    trigger, resolve = alert_events
    assert trigger["dedup_key"] == "model:forewarn-failure:pump:data_drift" and trigger["severity"] == "warning"
    assert trigger["ts"] == T0 + 2 * WINDOW - 1 and resolve["ts"] == T0 + 6 * WINDOW - 1
    assert DRIFT in trigger["reason"] and trigger["evidence"][0]["sensor"] == "vibration"
    assert trigger["alert_id"] == resolve["alert_id"]

    # the data-science channel heard both, in words; nobody was paged and the on-call channel stayed quiet
    assert data_science.rejected == [] and len(data_science.accepted) == 2
    said = [json.dumps(m) for m in data_science.accepted]
    assert "data drift on pump" in said[0] and "vibration" in said[0] and trigger["alert_id"] in said[0]
    assert "recovered" in said[1]
    assert env.pd.requests == [] and env.slack.requests == [] and env.hook.requests == []


def test_model_health_state_is_rebuilt_after_redis_lost_it(env: Env) -> None:
    def publish(*events: ModelHealthEvent) -> None:
        for event in events:
            env.producer.produce(env.kafka.topic(topics.MODEL_HEALTH), key=event.model_name,
                                 value=event.model_dump_json())
        assert env.producer.flush(30) == 0

    with SlackReceiver() as data_science:
        settings = env.settings(slack_data_science_webhook_url=data_science.url)
        with Running(bootstrap(settings)) as running:
            publish(judgement(0, True), judgement(1, True))
            assert data_science.wait_for(lambda messages: len(messages) >= 1)
            running.settle()
        # Redis restarted empty: every alerter key is gone, the loaded markers with them
        client = redis.Redis.from_url(env.redis.url)
        for key in client.scan_iter(match=f"{env.redis.key_prefix}:*", count=1000):
            client.delete(key)
        client.close()

        with Running(bootstrap(settings)) as running:
            publish(judgement(2, False), judgement(3, False))
            assert data_science.wait_for(lambda messages: len(messages) >= 2)
            running.settle()
            alert_events = env.read(topics.ALERTS, until=lambda r: len(r) >= 2, settle_s=1.0)
            assert running.alerter.loop.rebuilds >= 1

    # the rebuilt state knew the open alert: the clear windows resolved it, nothing triggered again
    assert [e["action"] for e in alert_events] == ["trigger", "resolve"]
    assert alert_events[0]["alert_id"] == alert_events[1]["alert_id"]
    assert len(data_science.accepted) == 2 and env.pd.requests == []
