"""Produce, then wait until the broker confirmed everything: the one produce-and-confirm step of every
stage that must not commit its input before its output is durable."""

from __future__ import annotations

from typing import Any

from forewarn.kafka.errors import DeliveryFailed


class Delivery:
    """Messages produced for one unit of work (a batch), confirmed together by :meth:`wait`.

    The first failed delivery's Kafka error code is kept, so the caller can tell a full queue from a
    missing topic without parsing text."""

    __slots__ = ("_codes", "_errors", "_on_delivery", "_producer", "produced")

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._errors: list[str] = []
        self._codes: list[int] = []
        self.produced = 0

        def on_delivery(err: Any, _message: Any) -> None:
            if err is not None:
                self._errors.append(str(err))
                if hasattr(err, "code"):
                    self._codes.append(err.code())

        self._on_delivery = on_delivery

    def produce(self, topic: str, value: bytes, *, partition: int | None = None, key: bytes | None = None,
                headers: Any = None) -> None:
        kwargs: dict[str, Any] = {"value": value, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if key is not None:
            kwargs["key"] = key
        if headers is not None:
            kwargs["headers"] = headers
        self._producer.produce(topic, **kwargs)
        self._producer.poll(0)  # serve earlier callbacks; keeps the local queue from filling
        self.produced += 1

    def wait(self, timeout_s: float = 30.0, what: str = "messages") -> None:
        """Block until every message is confirmed; raise :class:`DeliveryFailed` if any was not."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            raise DeliveryFailed(
                f"{remaining + len(self._errors)} of {self.produced} {what} not delivered ({remaining} still "
                f"queued after {timeout_s:.0f} s), first errors: {self._errors[:3]}; not committing",
                code=self._codes[0] if self._codes else None, retriable=not self._errors)
