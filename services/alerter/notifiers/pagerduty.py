"""PagerDuty Events API v2 notifier.

trigger and escalate send ``event_action: trigger``; acknowledge and resolve send theirs. The dedup key
is derived from the alert id, so every retry, replay or escalation of one incident lands on the same
PagerDuty incident: PagerDuty itself deduplicates what our at-least-once delivery might repeat.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr

from forewarn.schemas import AlertEvent

from .base import DeliveryError, HttpNotifier, JsonRequest, NotifierConfig

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_EVENT_ACTIONS = {"trigger": "trigger", "escalate": "trigger", "acknowledge": "acknowledge", "resolve": "resolve"}


class PagerDutyConfig(NotifierConfig):
    routing_key: SecretStr = Field(description="PagerDuty Events v2 routing (integration) key of the service.")
    url: str = Field(DEFAULT_EVENTS_URL, description="PagerDuty Events API v2 endpoint.")
    client: str = Field("Forewarn", description="Shown in PagerDuty as the monitoring client.")


def pagerduty_dedup_key(event: AlertEvent) -> str:
    # The alert id comes first so that cutting to PagerDuty's 255 characters never loses it.
    return f"{event.alert_id}:{event.dedup_key}"[:255]


def pagerduty_event(event: AlertEvent, routing_key: str, client: str = "Forewarn") -> dict[str, Any]:
    action = _EVENT_ACTIONS.get(event.action)
    if action is None:
        raise ValueError(f"PagerDuty has no event for alert action {event.action!r}")
    body: dict[str, Any] = {
        "routing_key": routing_key, "event_action": action, "dedup_key": pagerduty_dedup_key(event),
    }
    if action != "trigger":
        return body
    risk = f"{event.p_failure:.0%}" + (f" within {event.horizon}" if event.horizon else "")
    rul = f", RUL {event.rul:g}" if event.rul is not None else ""
    summary = f"{event.machine_id} ({event.machine_type}) failure risk {risk}{rul}"
    if event.mode != "any":
        summary += f" [{event.mode}]"
    if event.action == "escalate":
        summary = f"ESCALATED (level {event.escalation_level}): {summary}"
    payload: dict[str, Any] = {
        "summary": summary[:1024],
        "source": event.machine_id,
        "severity": event.severity,
        "timestamp": datetime.fromtimestamp(event.ts / 1000, tz=UTC).isoformat(timespec="milliseconds"),
        "component": event.machine_type,
        "class": event.mode,
        "custom_details": {
            "alert_id": event.alert_id, "dedup_key": event.dedup_key, "state": event.state,
            "reason": event.reason, "p_failure": event.p_failure, "peak_p": event.peak_p, "rul": event.rul,
            "horizon": event.horizon, "model_version": event.model_version,
            "escalation_level": event.escalation_level,
            "evidence": [c.model_dump(mode="json", exclude_none=True) for c in event.evidence],
        },
    }
    if event.site:
        payload["group"] = event.site
    body.update(payload=payload, client=client)
    return body


class PagerDutyNotifier(HttpNotifier[PagerDutyConfig]):
    name = "pagerduty"
    config_type = PagerDutyConfig

    def request(self, event: AlertEvent) -> JsonRequest:
        try:
            body = pagerduty_event(event, self.config.routing_key.get_secret_value(), self.config.client)
        except ValueError as exc:
            raise DeliveryError(str(exc), retryable=False, reason="unsupported") from exc
        return JsonRequest(self.config.url, body)
