"""The ingest use case, free of HTTP: validate a batch, write valid readings and dead letters, and say
exactly which readings Kafka confirmed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from forewarn.reading_check import Reason, Rejection

from .body import Malformed
from .publisher import Outgoing, Publisher
from .records import encode_dead_letter, encode_reading
from .validation import ReadingValidator


@dataclass(slots=True)
class IngestOutcome:
    request_id: str
    accepted: list[int] = field(default_factory=list)
    """Indexes of readings Kafka confirmed in sensor.readings."""
    retry: list[int] = field(default_factory=list)
    """Indexes of valid readings Kafka did not confirm: the sender should resend them."""
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)
    dead_letters_unconfirmed: int = 0
    error: str | None = None

    @property
    def complete(self) -> bool:
        """Everything is durably somewhere: valid readings in the topic, invalid ones in the DLQ."""
        return not self.retry and not self.dead_letters_unconfirmed


class IngestService:
    def __init__(
        self, validator: ReadingValidator, publisher: Publisher, clock: Callable[[], float] = time.time
    ) -> None:
        self.validator = validator
        self.publisher = publisher
        self.clock = clock

    async def ingest(self, items: list[tuple[int, Any]], request_id: str) -> IngestOutcome:
        now_ms = int(self.clock() * 1000)
        check = self.validator.check
        readings: list[tuple[int, bytes, bytes]] = []
        dead_letters: list[tuple[int, bytes]] = []
        outcome = IngestOutcome(request_id)
        for index, item in items:
            result = (
                Rejection(Reason.MALFORMED_JSON, item.error) if type(item) is Malformed else check(item, now_ms)
            )
            if type(result) is dict:
                try:
                    key, value = encode_reading(result, now_ms)
                except (UnicodeEncodeError, orjson.JSONEncodeError):
                    result = Rejection(
                        Reason.INVALID_FIELD, "text fields must be valid Unicode (no lone surrogate escapes)"
                    )
                else:
                    readings.append((index, key, value))
                    continue
            assert isinstance(result, Rejection)
            outcome.rejected.append((index, result))
            dead_letters.append((index, encode_dead_letter(request_id, index, item, result, now_ms)))
        report = await self.publisher.publish(Outgoing(readings, dead_letters, request_id.encode()))
        outcome.accepted = report.delivered
        outcome.retry = report.undelivered
        outcome.dead_letters_unconfirmed = len(report.dead_letters_undelivered)
        outcome.error = report.error
        return outcome
