"""The notifier plugin interface (one small ``send``) and the HTTP plumbing the shipped plugins share.

A notifier turns an :class:`AlertEvent` into one request to one destination. It raises
:class:`DeliveryError` saying whether a retry may help; retries, timeouts' bookkeeping, metrics and the
dead-letter topic are the dispatcher's job, so a plugin stays a payload builder plus one POST.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import httpx
import orjson

from .events import AlertEvent


class DeliveryError(Exception):
    """A delivery that did not succeed. ``retryable``: a later attempt may (5xx, 429, timeout, network)."""

    def __init__(self, message: str, *, retryable: bool, reason: str = "error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason


@runtime_checkable
class Notifier(Protocol):
    name: str

    def send(self, event: AlertEvent) -> None:
        """Deliver one event or raise :class:`DeliveryError`; must not block past the plugin's timeout."""

    def close(self) -> None:
        """Release connections."""


class JsonPoster:
    """POST JSON with a hard timeout and map the answer to success or a :class:`DeliveryError`."""

    def __init__(self, timeout_s: float, user_agent: str = "forewarn-alerter") -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), headers={"User-Agent": user_agent})

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self._client.post(
                url, content=orjson.dumps(body), headers={"Content-Type": "application/json", **(headers or {})}
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out: {type(exc).__name__}", retryable=True, reason="timeout") from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"network error: {exc}", retryable=True, reason="network") from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        retryable = status in (408, 425, 429) or status >= 500
        raise DeliveryError(
            f"HTTP {status}: {response.text[:300]}", retryable=retryable, reason=f"http_{status}"
        )

    def close(self) -> None:
        self._client.close()
