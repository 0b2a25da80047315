"""The feedback API on a running alerter: auth, queries, feedback transitions, label events, escalation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.integration import test_alerter_pipeline
from tests.integration.test_alerter_pipeline import INCIDENT, T0, Env, Running, count

from forewarn import topics
from forewarn.services.alerter.bootstrap import bootstrap
from forewarn.services.alerter.settings import DEV_API_KEY

pytestmark = pytest.mark.timeout(60)
env = test_alerter_pipeline.env  # the running alerter of the pipeline tests, one fixture for both
KEY = {"X-API-Key": "k-test-0123456789abcdef"}


def ids_by_machine(client: TestClient, **params: Any) -> dict[str, str]:
    answer = client.get("/v1/alerts", params=params, headers=KEY)
    assert answer.status_code == 200, answer.text
    return {view["alert"]["machine_id"]: view["alert"]["id"] for view in answer.json()["alerts"]}


def test_feedback_api_acknowledges_labels_and_rejects_what_it_must(env: Env) -> None:
    alerter = bootstrap(env.settings(api_keys=KEY["X-API-Key"]))
    client = TestClient(alerter.app)
    with Running(alerter) as running:
        env.produce({"m-a": INCIDENT[:5], "m-b": INCIDENT[:5]})
        assert env.pd.wait_for(lambda events: count(events, "trigger") == 2)

        # auth
        assert client.get("/v1/alerts").status_code == 401
        assert client.get("/v1/alerts", headers={"X-API-Key": DEV_API_KEY}).status_code == 401
        # queries
        ids = ids_by_machine(client, state="triggered")
        assert set(ids) == {"m-a", "m-b"}
        assert set(ids_by_machine(client, machine_id="m-a")) == {"m-a"}
        assert ids_by_machine(client, since=T0 + 60_000) == {}
        assert set(ids_by_machine(client, since="2026-01-01T00:00:00Z", until=T0 + 60_000)) == {"m-a", "m-b"}
        assert client.get("/v1/alerts", params={"since": "yesterday"}, headers=KEY).status_code == 422
        view = client.get(f"/v1/alerts/{ids['m-a']}", headers=KEY).json()
        assert view["alert"]["state"] == "triggered" and "acknowledged" in view["allowed_feedback"]
        assert view["alert"]["evidence"][0]["sensor"] == "vibration"
        assert client.get("/v1/alerts/nope", headers=KEY).status_code == 404

        def feedback(alert_id: str, **body: Any) -> Any:
            return client.post(f"/v1/alerts/{alert_id}/feedback", json=body, headers=KEY)

        assert feedback("nope", kind="acknowledged").status_code == 404
        acked = feedback(ids["m-a"], kind="acknowledged", operator="ana", comment="on my way")
        assert acked.status_code == 200, acked.text
        assert acked.json()["alert"]["alert"]["state"] == "acknowledged" and acked.json()["published"] is True
        again = feedback(ids["m-a"], kind="acknowledged")
        assert again.status_code == 409
        assert again.json()["detail"]["allowed"] == ["confirmed_failure", "false_alarm", "maintenance_done"]
        assert feedback(ids["m-a"], kind="confirmed_failure").status_code == 422  # needs failure_ts
        assert feedback(ids["m-a"], kind="exploded").status_code == 422
        assert feedback(ids["m-b"], kind="false_alarm", operator="bo").json()["alert"]["alert"]["state"] == "resolved"
        confirmed = feedback(ids["m-a"], kind="confirmed_failure", failure_ts="2026-01-01T00:10:00Z",
                             failure_mode="bearing", operator="ana")
        assert confirmed.status_code == 200, confirmed.text

        # PagerDuty heard the acknowledgement and the resolve
        assert env.pd.wait_for(lambda events: count(events, "acknowledge") == 1 and count(events, "resolve") == 1)
        running.settle()
        labels = env.read(topics.FEEDBACK, until=lambda r: len(r) >= 3, settle_s=0.5)
        alert_events = env.read(topics.ALERTS, until=lambda r: len(r) >= 5)

    incidents = {key.split(":")[1]: actions for key, actions in env.pd.incidents().items()}
    assert incidents == {"m-a": ["trigger", "acknowledge"], "m-b": ["trigger", "resolve"]}
    assert set(ids_by_machine(client, state="resolved")) == {"m-b"}

    by_kind = {label["kind"]: label for label in labels}
    assert sorted(by_kind) == ["acknowledged", "confirmed_failure", "false_alarm"] and len(labels) == 3
    failure = by_kind["confirmed_failure"]
    assert failure["machine_id"] == "m-a" and failure["alert_id"] == ids["m-a"]
    assert failure["failure_ts"] == T0 + 600_000 and failure["failure_mode"] == "bearing"
    assert failure["alert_window"]["start_ts"] == T0 + 3000 and failure["operator"] == "ana"
    false_alarm = by_kind["false_alarm"]
    assert false_alarm["alert_window"]["end_ts"] >= false_alarm["alert_window"]["start_ts"]
    assert false_alarm["failure_ts"] is None
    assert sorted((e["machine_id"], e["action"]) for e in alert_events) == [
        ("m-a", "acknowledge"), ("m-a", "feedback"), ("m-a", "trigger"), ("m-b", "resolve"), ("m-b", "trigger")]

    # operations endpoints
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'forewarn_alerter_notifier_calls_total{notifier="pagerduty",outcome="ok"}' in metrics
    assert "forewarn_alerter_notifier_call_seconds_bucket" in metrics


def test_unacknowledged_alert_escalates_and_acknowledged_one_does_not(env: Env) -> None:
    alerter = bootstrap(env.settings())
    client = TestClient(alerter.app)
    with Running(alerter) as running:
        assert client.get("/readyz").json() == {"ready": True, "reason": "ok"}
        env.produce({"f-ack": INCIDENT[:5], "f-esc": INCIDENT[:5]}, machine_type="fast")  # escalate_after: 3s
        assert env.pd.wait_for(lambda events: count(events, "trigger") == 2)
        ids = {v["alert"]["machine_id"]: v["alert"]["id"]
               for v in client.get("/v1/alerts", headers={"X-API-Key": DEV_API_KEY}).json()["alerts"]}
        answer = client.post(f"/v1/alerts/{ids['f-ack']}/feedback", json={"kind": "acknowledged"},
                             headers={"X-API-Key": DEV_API_KEY})
        assert answer.status_code == 200
        escalations = env.read(topics.ALERTS, until=lambda r: any(e["action"] == "escalate" for e in r),
                               timeout=15, settle_s=1.5)
        running.settle()

    escalated = [e for e in escalations if e["action"] == "escalate"]
    assert [(e["machine_id"], e["escalation_level"]) for e in escalated] == [("f-esc", 1)]
    assert escalated[0]["severity"] == "critical" and "not acknowledged" in escalated[0]["reason"]
    assert any("ESCALATED" in m["text"] and "f-esc" in m["text"] for m in env.slack.accepted)
    assert count(env.pd.accepted, "trigger") == 2  # escalation is routed to Slack only in this policy
