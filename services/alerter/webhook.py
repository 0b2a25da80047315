"""Generic webhook notifier: the alert event as JSON, with the delivery id as idempotency key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .events import AlertEvent
from .notifier import JsonPoster


class WebhookConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str = Field(description="Where to POST every alert event (JSON).")
    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout (connect, read, write each).")


def webhook_body(event: AlertEvent) -> dict[str, Any]:
    return {"type": "forewarn.alert", **event.model_dump(mode="json")}


class WebhookNotifier:
    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._poster = JsonPoster(config.timeout_s)

    def send(self, event: AlertEvent) -> None:
        # Receivers can drop replays by this key: the same alert change always carries the same id.
        self._poster.post(self.config.url, webhook_body(event), headers={"Idempotency-Key": event.event_id})

    def close(self) -> None:
        self._poster.close()
