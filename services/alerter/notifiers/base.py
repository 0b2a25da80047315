"""The notifier plugin interface (one small ``send``) and the HTTP code path every shipped plugin shares.

A notifier turns an :class:`AlertEvent` into one request to one destination. It raises
:class:`DeliveryError` saying whether a retry may help; retries, timeouts' bookkeeping, metrics and the
dead-letter topic are the dispatcher's job, so a plugin is a payload builder over :class:`HttpNotifier`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from forewarn.schemas import AlertEvent


class DeliveryError(Exception):
    """A delivery that did not succeed. ``retryable``: a later attempt may (5xx, 429, timeout, network)."""

    def __init__(self, message: str, *, retryable: bool, reason: str = "error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason


@runtime_checkable
class Notifier(Protocol):
    @property
    def name(self) -> str:
        """The notifier's name in routes, delivery ids and metrics."""

    def send(self, event: AlertEvent) -> None:
        """Deliver one event or raise :class:`DeliveryError`; must not block past the plugin's timeout."""

    def close(self) -> None:
        """Release connections."""


class NotifierConfig(BaseModel):
    """What every notifier's configuration has. A plugin's own fields are its settings: the registry
    turns each into ``FOREWARN_ALERTER__<NOTIFIER>_<FIELD>`` (see notifiers.registry)."""

    model_config = ConfigDict(frozen=True)

    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout (connect, read, write each).")


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


@dataclass(frozen=True)
class JsonRequest:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


ConfigT = TypeVar("ConfigT", bound=NotifierConfig)


class HttpNotifier(ABC, Generic[ConfigT]):
    """A notifier that sends one JSON POST per event: a plugin says only where and what (:meth:`request`);
    posting and classifying the answer is this one code path."""

    name: ClassVar[str]
    config_type: ClassVar[type[NotifierConfig]]
    # Whether a policy route left unset includes this notifier (notifiers.registry.DEFAULT_ROUTE_NAMES).
    in_default_routes: ClassVar[bool] = True

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self._poster = JsonPoster(config.timeout_s)

    @abstractmethod
    def request(self, event: AlertEvent) -> JsonRequest:
        """The request that delivers ``event``; raise :class:`DeliveryError` when it cannot be delivered."""

    def send(self, event: AlertEvent) -> None:
        request = self.request(event)
        self._poster.post(request.url, request.body, request.headers)

    def close(self) -> None:
        self._poster.close()
