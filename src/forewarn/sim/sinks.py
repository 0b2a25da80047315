"""Where simulated or replayed readings go: the small interfaces every output implements.

A run writes readings to one :class:`ReadingSink` and ground truth to one :class:`TruthSink`; both
raise :class:`DeliveryFailed` from ``close()`` if anything was not durably delivered, so a run that
exits 0 delivered everything it reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from forewarn.errors import UserError
from forewarn.schemas import GroundTruthEvent
from forewarn.sim.batch import ReadingBatch


class DeliveryFailed(UserError):
    """Some readings or events were not accepted by the destination."""


class ReadingSink(Protocol):
    def write(self, batch: ReadingBatch) -> None: ...

    def close(self) -> None: ...


class TruthSink(Protocol):
    def write_events(self, events: Sequence[GroundTruthEvent]) -> None: ...

    def close(self) -> None: ...


class NullTruthSink:
    """Ground truth not wanted (``--truth none``)."""

    def write_events(self, events: Sequence[GroundTruthEvent]) -> None:
        del events

    def close(self) -> None:
        return None


class MemorySink:
    """Keeps everything in memory: for tests and for callers that post-process a small run."""

    def __init__(self) -> None:
        self.batches: list[ReadingBatch] = []
        self.events: list[GroundTruthEvent] = []

    def write(self, batch: ReadingBatch) -> None:
        self.batches.append(batch)

    def write_events(self, events: Sequence[GroundTruthEvent]) -> None:
        self.events.extend(events)

    def close(self) -> None:
        return None
