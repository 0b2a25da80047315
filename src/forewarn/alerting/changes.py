"""A score as the alerter takes it in, what the alert-state repository holds per dedup key, and what one
decision writes to it atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from forewarn.schemas import RiskScore

from .events import DeliveryJob, OutMessage
from .policy import Alert, Tracker


@dataclass(frozen=True)
class ScoreInput:
    """A consumed score and where it came from: ``source`` 'topic:partition', ``position`` its
    forewarn.scores_wire.position there (the Kafka offset and the place in its envelope)."""

    source: str
    position: int
    score: RiskScore


class Stored(NamedTuple):
    """One dedup key as stored: its tracker (None when never seen) and, per input partition
    ('topic:partition'), the position (forewarn.scores_wire.position) of the last score applied."""

    tracker: Tracker | None
    positions: dict[str, int]


@dataclass
class Changes:
    """Everything one decision writes, atomically."""

    trackers: dict[str, Tracker] = field(default_factory=dict)
    positions: dict[str, dict[str, int]] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    messages: list[OutMessage] = field(default_factory=list)
    deliveries: list[DeliveryJob] = field(default_factory=list)
    result: Any = None

    def add_alert(self, alert: Alert) -> None:
        self.alerts[alert.id] = alert
