"""Generic webhook notifier: the alert event as JSON, with the delivery id as idempotency key."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from forewarn.schemas import AlertEvent

from .base import HttpNotifier, JsonRequest, NotifierConfig


class WebhookConfig(NotifierConfig):
    url: str = Field(description="Generic JSON webhook: where to POST every alert event.")


def webhook_body(event: AlertEvent) -> dict[str, Any]:
    return {"type": "forewarn.alert", **event.model_dump(mode="json")}


class WebhookNotifier(HttpNotifier[WebhookConfig]):
    name = "webhook"
    config_type = WebhookConfig

    def request(self, event: AlertEvent) -> JsonRequest:
        # Receivers can drop replays by this key: the same alert change always carries the same id.
        return JsonRequest(self.config.url, webhook_body(event), headers={"Idempotency-Key": event.event_id})
