"""Slack incoming-webhook notifier: one Block Kit message per alert change.

The message carries what an on-call engineer needs without opening another tool: machine and site, the
risk and its horizon (predicted lead time) or the RUL, the sensors that drove the score, and the alert id
to quote in the feedback API. Limits (header 150 characters, 10 fields of 2,000, 3,000 per text) are
Slack's; longer text is cut so that Slack never rejects a message as ``invalid_blocks``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr

from forewarn.schemas import AlertEvent

from .base import HttpNotifier, JsonRequest, NotifierConfig

_TITLES = {
    "trigger": (":red_circle:", "Failure risk"),
    "escalate": (":rotating_light:", "ESCALATED: failure risk not acknowledged"),
    "acknowledge": (":eyes:", "Acknowledged"),
    "resolve": (":white_check_mark:", "Resolved"),
    "feedback": (":memo:", "Feedback"),
}


class SlackConfig(NotifierConfig):
    webhook_url: SecretStr = Field(description="Slack incoming-webhook URL (it embeds a token: a secret).")


def cut_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso_utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _lead_time(event: AlertEvent) -> str:
    parts = []
    if event.horizon:
        parts.append(f"failure expected within {event.horizon}")
    if event.rul is not None:
        parts.append(f"RUL {event.rul:g}")
    return "; ".join(parts) or "n/a"


def _evidence_lines(event: AlertEvent) -> str:
    if not event.evidence:
        return "_no sensor attribution in the score_"
    lines = []
    for item in event.evidence:
        sensor = item.sensor or item.feature
        value = f" = {item.value:.4g}" if item.value is not None else ""
        lines.append(f"• *{sensor}* (`{item.feature}`{value}): {item.contribution:+.3f}")
    return "\n".join(lines)


def slack_message(event: AlertEvent) -> dict[str, Any]:
    emoji, title = _TITLES.get(event.action, (":bell:", event.action))
    header = cut_text(f"{emoji} {title}: {event.machine_id} ({event.severity})", 150)
    fields = [
        f"*Machine*\n`{event.machine_id}` ({event.machine_type})",
        f"*Site*\n{event.site or 'n/a'}",
        f"*Risk*\n{event.p_failure:.0%} (peak {event.peak_p:.0%})",
        f"*Lead time / RUL*\n{_lead_time(event)}",
        f"*State*\n{event.state}" + (f" (escalation {event.escalation_level})" if event.escalation_level else ""),
        f"*Alert id*\n`{event.alert_id}`",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": cut_text(f, 2000)} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": cut_text(f"*Top sensor evidence*\n{_evidence_lines(event)}", 3000)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": cut_text(
            f"{event.reason} · mode `{event.mode}` · dedup `{event.dedup_key}` · "
            f"model {event.model_version or 'n/a'} · score time {iso_utc(event.ts)}", 3000)}]},
    ]
    text = (f"{title}: {event.machine_id} ({event.machine_type}) at {event.site or 'unknown site'}, "
            f"risk {event.p_failure:.0%}, alert {event.alert_id}")
    return {"text": cut_text(text, 3000), "blocks": blocks}


class SlackNotifier(HttpNotifier[SlackConfig]):
    name = "slack"
    config_type = SlackConfig

    def request(self, event: AlertEvent) -> JsonRequest:
        return JsonRequest(self.config.webhook_url.get_secret_value(), slack_message(event))
