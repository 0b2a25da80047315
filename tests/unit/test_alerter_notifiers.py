"""Notifier payloads: Slack Block Kit and PagerDuty Events API v2, checked against the documented rules
that the local receivers (tests/receivers.py) also enforce."""

from __future__ import annotations

import json

import pytest

from forewarn.schemas import AlertEvent, Contribution
from forewarn.services.alerter.notifiers.pagerduty import pagerduty_dedup_key, pagerduty_event
from forewarn.services.alerter.notifiers.slack import slack_message
from forewarn.services.alerter.notifiers.webhook import webhook_body
from receivers import pagerduty_problems, slack_problems


def event(action: str = "trigger", **overrides: object) -> AlertEvent:
    fields: dict[str, object] = dict(
        event_id="a1b2c3.1", action=action, alert_id="a1b2c3", revision=1, dedup_key="pump-7:any",
        machine_id="pump-7",
        machine_type="pump", site="plant-north", mode="any", state="triggered", previous_state="pending",
        reason="p_failure 0.91 >= 0.80 for 3 consecutive scores", severity="error", p_failure=0.91,
        peak_p=0.93, rul=42.0, horizon="24h", model_version="7",
        evidence=[Contribution(feature="vibration_mean_10m", sensor="vibration", value=7.31, contribution=0.42),
                  Contribution(feature="temperature_slope_1h", sensor="temperature", value=0.8, contribution=0.17)],
        ts=1_767_225_600_000, opened_ts=1_767_225_600_000, emitted_at=1_767_225_601_000,
    )
    fields.update(overrides)
    return AlertEvent.model_validate(fields)


def _all_text(message: dict) -> str:
    return json.dumps(message)


@pytest.mark.parametrize("action", ["trigger", "escalate", "acknowledge", "resolve"])
def test_slack_message_is_valid_block_kit_with_the_required_fields(action: str) -> None:
    message = slack_message(event(action))
    assert slack_problems(message) == []
    text = _all_text(message)
    for required in ("pump-7", "plant-north", "91%", "24h", "RUL 42", "vibration", "vibration_mean_10m",
                     "temperature", "a1b2c3"):
        assert required in text, required
    assert message["blocks"][0]["type"] == "header"
    assert "pump-7" in message["text"]  # the notification fallback


def test_slack_message_stays_within_limits_for_huge_values() -> None:
    long = "x" * 500
    message = slack_message(event(machine_id=long, site=long, reason=long * 10, dedup_key=long,
                                  evidence=[Contribution(feature=long, contribution=1.0)] * 5))
    assert slack_problems(message) == []


def test_slack_message_without_evidence_or_rul() -> None:
    message = slack_message(event(evidence=[], rul=None, horizon=None, site=None))
    assert slack_problems(message) == []
    assert "no sensor attribution" in _all_text(message)


@pytest.mark.parametrize(
    ("p", "severity"), [(0.97, "critical"), (0.9, "error"), (0.7, "warning"), (0.3, "info")]
)
def test_pagerduty_trigger_maps_risk_to_severity(p: float, severity: str) -> None:
    body = pagerduty_event(event(p_failure=p, severity=severity), "R0UTINGKEY")
    assert pagerduty_problems(body) == []
    assert body["event_action"] == "trigger"
    assert body["routing_key"] == "R0UTINGKEY"
    payload = body["payload"]
    assert payload["severity"] == severity
    assert payload["source"] == "pump-7" and payload["component"] == "pump" and payload["group"] == "plant-north"
    assert "pump-7" in payload["summary"] and "24h" in payload["summary"]
    details = payload["custom_details"]
    assert details["alert_id"] == "a1b2c3" and details["rul"] == 42.0
    assert details["evidence"][0]["sensor"] == "vibration"


@pytest.mark.parametrize(("action", "pd_action"), [("acknowledge", "acknowledge"), ("resolve", "resolve")])
def test_pagerduty_acknowledge_and_resolve_carry_only_the_dedup_key(action: str, pd_action: str) -> None:
    body = pagerduty_event(event(action, state="resolved"), "R0UTINGKEY")
    assert pagerduty_problems(body) == []
    assert body == {"routing_key": "R0UTINGKEY", "event_action": pd_action, "dedup_key": "a1b2c3:pump-7:any"}


def test_pagerduty_escalation_retriggers_the_same_incident() -> None:
    trigger = pagerduty_event(event("trigger"), "K")
    escalation = pagerduty_event(event("escalate", escalation_level=1, severity="critical"), "K")
    assert escalation["event_action"] == "trigger"
    assert escalation["dedup_key"] == trigger["dedup_key"]
    assert escalation["payload"]["summary"].startswith("ESCALATED")
    assert pagerduty_problems(escalation) == []


def test_pagerduty_dedup_key_keeps_the_alert_id_within_255_characters() -> None:
    key = pagerduty_dedup_key(event(dedup_key="m" * 400 + ":any"))
    assert len(key) == 255 and key.startswith("a1b2c3:")


def test_pagerduty_has_no_event_for_feedback_notes() -> None:
    with pytest.raises(ValueError):
        pagerduty_event(event("feedback"), "K")


def test_webhook_body_is_the_event_as_json() -> None:
    body = webhook_body(event())
    assert body["type"] == "forewarn.alert"
    assert AlertEvent.model_validate({k: v for k, v in body.items() if k != "type"}) == event()


def test_receiver_rules_catch_malformed_payloads() -> None:
    assert pagerduty_problems({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s"}})
    assert pagerduty_problems({"routing_key": "k", "event_action": "resolve"})
    assert slack_problems({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]})
    assert slack_problems({})
