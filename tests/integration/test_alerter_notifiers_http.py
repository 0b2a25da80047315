"""The real notifiers against the local receivers: what counts as delivered, retryable or permanent."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from forewarn.schemas import AlertEvent
from forewarn.services.alerter.notifiers.base import DeliveryError
from forewarn.services.alerter.notifiers.pagerduty import PagerDutyConfig, PagerDutyNotifier
from forewarn.services.alerter.notifiers.slack import SlackConfig, SlackNotifier
from forewarn.services.alerter.notifiers.webhook import WebhookConfig, WebhookNotifier
from receivers import Fault, PagerDutyReceiver, SlackReceiver, WebhookReceiver

pytestmark = pytest.mark.timeout(30)


def event(action: str = "trigger") -> AlertEvent:
    return AlertEvent(event_id="abc.1", action=action, alert_id="abc", revision=1, dedup_key="p1:any",
                      machine_id="p1", machine_type="pump", site="s", mode="any",
                      state="resolved" if action == "resolve" else "triggered", previous_state="pending",
                      reason="r", severity="error", p_failure=0.9, peak_p=0.9, horizon="24h", ts=1_767_225_600_000,
                      opened_ts=1_767_225_600_000, emitted_at=1_767_225_600_000)


def test_each_notifier_delivers_a_payload_its_receiver_accepts() -> None:
    with SlackReceiver() as slack, PagerDutyReceiver() as pd, WebhookReceiver() as hook:
        SlackNotifier(SlackConfig(webhook_url=SecretStr(slack.url))).send(event())
        notifier = PagerDutyNotifier(PagerDutyConfig(routing_key=SecretStr("R" * 32), url=pd.url))
        notifier.send(event())
        notifier.send(event("resolve"))
        WebhookNotifier(WebhookConfig(url=hook.url)).send(event())
        assert len(slack.accepted) == 1 and slack.rejected == []
        assert pd.incidents() == {"abc:p1:any": ["trigger", "resolve"]} and pd.rejected == []
        assert hook.accepted[0]["alert_id"] == "abc"
        assert hook.requests[0].headers["Idempotency-Key"] == "abc.1"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (400, False),
                                                   (403, False), (404, False)])
def test_http_errors_map_to_retryable_or_permanent(status: int, retryable: bool) -> None:
    with PagerDutyReceiver() as pd:
        pd.fault = Fault(status=status)
        notifier = PagerDutyNotifier(PagerDutyConfig(routing_key=SecretStr("R" * 32), url=pd.url))
        with pytest.raises(DeliveryError) as info:
            notifier.send(event())
        assert info.value.retryable is retryable and info.value.reason == f"http_{status}"


def test_a_slow_receiver_times_out_within_the_notifier_timeout() -> None:
    with SlackReceiver() as slack:
        slack.fault = Fault(delay_s=2.0)
        notifier = SlackNotifier(SlackConfig(webhook_url=SecretStr(slack.url), timeout_s=0.3))
        started = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            notifier.send(event())
        assert time.monotonic() - started < 1.5
        assert info.value.retryable and info.value.reason == "timeout"


def test_a_closed_port_is_a_retryable_network_error() -> None:
    receiver = WebhookReceiver().start()
    url = receiver.url
    receiver.stop()
    with pytest.raises(DeliveryError) as info:
        WebhookNotifier(WebhookConfig(url=url, timeout_s=1)).send(event())
    assert info.value.retryable and info.value.reason == "network"
