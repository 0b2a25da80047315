"""The data scientists' Slack channel: where model-health alerts go (data drift, decay, a refused retrain),
apart from the on-call engineers' Slack and never to PagerDuty.

It is a notifier of its own so the policy routes to it by name (``slack_data_science``) and its webhook is a
setting of its own (``FOREWARN_ALERTER__SLACK_DATA_SCIENCE_WEBHOOK_URL``). Without one, the settings fall
back to the main Slack webhook with a ``channel`` override (``FOREWARN_ALERTER__SLACK_DATA_SCIENCE_CHANNEL``,
default ``#forewarn-data-science``): Slack's legacy incoming webhooks honour it, app webhooks post to their
own channel whatever it says (see settings.AlerterOptions.delivery_configs).

A model-health alert is told in the monitor's words (the alert's reason carries its summary); a machine
alert a policy routes here reads as it does in the main channel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr

from forewarn.alerting.model_health import is_model_health, model_and_scope
from forewarn.schemas import AlertEvent

from .base import HttpNotifier, JsonRequest, NotifierConfig
from .slack import cut_text, iso_utc, slack_message

DEFAULT_CHANNEL = "#forewarn-data-science"

_TITLES = {
    "trigger": (":chart_with_downwards_trend:", "Model health"),
    "escalate": (":rotating_light:", "Model health, still unacknowledged"),
    "acknowledge": (":eyes:", "Model health acknowledged"),
    "resolve": (":white_check_mark:", "Model health recovered"),
    "feedback": (":memo:", "Model health feedback"),
}


class SlackDataScienceConfig(NotifierConfig):
    webhook_url: SecretStr = Field(description="Slack incoming-webhook URL of the data-science channel (a "
                                               "secret). Unset: the main Slack webhook with a channel override.")
    channel: str | None = Field(None, description="Channel override sent with every message (needed only when "
                                                  "the webhook is shared with other channels).")


def _condition_words(mode: str) -> str:
    return mode.replace("_", " ")


def _sensor_lines(event: AlertEvent) -> str:
    if not event.evidence:
        return "_no sensors named_"
    lines = []
    for item in event.evidence:
        if item.sensor is None or item.feature == item.sensor:
            lines.append(f"• *{item.sensor or item.feature}*")
        else:
            score = f" (drift score {item.value:.3g})" if item.value is not None else ""
            lines.append(f"• *{item.sensor}*: `{item.feature}`{score}")
    return "\n".join(lines)


def model_health_message(event: AlertEvent) -> dict[str, Any]:
    """The Block Kit message of one model-health alert change."""
    emoji, title = _TITLES.get(event.action, (":bell:", event.action))
    model_name, scope = model_and_scope(event.machine_id) or (event.machine_id, "all")
    condition = _condition_words(event.mode)
    where = "the whole fleet" if scope == "all" else scope
    header = cut_text(f"{emoji} {title}: {condition} on {where} ({event.severity})", 150)
    fields = [
        f"*Model*\n`{model_name}`" + (f" v{event.model_version}" if event.model_version else ""),
        f"*Condition*\n{condition}",
        f"*Scope*\n{where}",
        f"*State*\n{event.state}" + (f" (escalation {event.escalation_level})" if event.escalation_level else ""),
        f"*Window end*\n{iso_utc(event.ts)}",
        f"*Alert id*\n`{event.alert_id}`",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": cut_text(event.reason, 3000)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": cut_text(f, 2000)} for f in fields]},
    ]
    if event.evidence:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": cut_text(f"*Sensors*\n{_sensor_lines(event)}", 3000)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cut_text(
        f"dedup `{event.dedup_key}` · opened {iso_utc(event.opened_ts)} · what to do: docs/OPERATIONS.md", 3000)}]})
    text = f"{title}: {condition} on {where} (model {model_name}): {event.reason}"
    return {"text": cut_text(text, 3000), "blocks": blocks}


class SlackDataScienceNotifier(HttpNotifier[SlackDataScienceConfig]):
    name = "slack_data_science"
    config_type = SlackDataScienceConfig
    # Machine alerts reach this channel only where a policy names it: a route left unset means the on-call
    # notifiers (notifiers.registry.DEFAULT_ROUTE_NAMES).
    in_default_routes: ClassVar[bool] = False

    def request(self, event: AlertEvent) -> JsonRequest:
        body = model_health_message(event) if is_model_health(event.machine_type) else slack_message(event)
        if self.config.channel:
            body["channel"] = self.config.channel
        return JsonRequest(self.config.webhook_url.get_secret_value(), body)
