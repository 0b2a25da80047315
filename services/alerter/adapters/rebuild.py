"""Rebuild the alerter's Redis state after Redis lost it (restarted empty, flushed, a fresh replica).

Everything the alerter keeps in Redis is derived from topics it already has: its inputs, ``risk.scores``
and ``model.health`` (each up to the group's committed offset), and ``alerts`` (what the inputs cannot
tell: wall times, escalations, operator feedback). This adapter reads them; forewarn.alerting.replay
computes the state from them. The two inputs never share a dedup key, so each is rebuilt on its own.

Nothing is emitted: every decision the replay reaches was published, and its deliveries handed to the
dispatcher (which keeps them while Redis is away), before its offsets were committed. What the replay
covers is bounded by ``risk.scores`` retention; older history (incident numbers, alerts opened before it)
is what that retention keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from forewarn import kafka, scores_wire
from forewarn.alerting.changes import ScoreInput
from forewarn.alerting.model_health import health_score
from forewarn.alerting.policy import PolicyBook
from forewarn.alerting.replay import replay
from forewarn.schemas import AlertEvent, ModelHealthEvent, RiskScore
from forewarn.settings import KafkaSettings

from ..ports import AlertRepository

# Long enough for a full retention of risk.scores at the rebuild's ~40k scores/s.
READ_TIMEOUT_S = 300.0


@dataclass
class RebuildReport:
    sources: list[str]
    scores: int = 0
    keys: int = 0
    alerts: int = 0
    recorded_applied: int = 0
    seconds: float = 0.0


class StateRebuilder:
    def __init__(self, settings: KafkaSettings, store: AlertRepository, policies: PolicyBook, alerts_topic: str,
                 clock_ms: Callable[[], int], *, health_topic: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.policies = policies
        self.alerts_topic = alerts_topic
        self.health_topic = health_topic
        self.clock_ms = clock_ms

    def recorded_events(self) -> list[AlertEvent]:
        events = []
        for batch in kafka.read_ranges(self.settings, self.alerts_topic, timeout_s=READ_TIMEOUT_S):
            for message in batch:
                try:
                    events.append(AlertEvent.model_validate_json(message.value() or b""))
                except ValidationError:
                    continue
        return events

    def _read(self, topic: str, ends: Mapping[int, int], parse: Callable[[Any], RiskScore]
              ) -> Iterator[ScoreInput]:
        # A dedup key's inputs all live in one partition (keyed by machine), so partitions may interleave.
        for batch in kafka.read_ranges(self.settings, topic, ends, timeout_s=READ_TIMEOUT_S):
            for message in batch:
                try:
                    docs = scores_wire.decode_value(message.value() or b"")
                except orjson.JSONDecodeError:
                    continue  # the live loop skipped it too
                source = f"{topic}:{message.partition()}"
                for index, doc in enumerate(docs):
                    try:
                        score = parse(doc)
                    except ValidationError:
                        continue
                    yield ScoreInput(source, scores_wire.position(message.offset(), index), score)

    def scores(self, topic: str, ends: Mapping[int, int]) -> Iterator[ScoreInput]:
        return self._read(topic, ends, RiskScore.model_validate)

    def health_inputs(self, topic: str, ends: Mapping[int, int]) -> Iterator[ScoreInput]:
        """The model-health judgements of ``topic``, as the live loop applied them."""
        return self._read(topic, ends, lambda doc: health_score(ModelHealthEvent.model_validate(doc)))

    def inputs(self, topic: str, ends: Mapping[int, int]) -> Iterator[ScoreInput]:
        return self.health_inputs(topic, ends) if topic == self.health_topic else self.scores(topic, ends)

    def rebuild(self, topic: str, ends: Mapping[int, int]) -> RebuildReport:
        """Rebuild the state of ``topic``'s partitions from their start up to ``ends`` (the committed
        offsets: everything before them was applied), write it, and mark those partitions loaded."""
        started = time.monotonic()
        sources = [f"{topic}:{p}" for p in sorted(ends)]
        report = RebuildReport(sources)
        recorded = self.recorded_events()
        counted: list[int] = [0]

        def counting(items: Iterator[ScoreInput]) -> Iterator[ScoreInput]:
            for item in items:
                counted[0] += 1
                yield item

        changes, applied = replay(counting(self.inputs(topic, ends)), recorded, self.policies, self.clock_ms())
        self.store.write_rebuilt(changes, sources)
        report.scores, report.keys, report.alerts = counted[0], len(changes.trackers), len(changes.alerts)
        report.recorded_applied = applied
        report.seconds = time.monotonic() - started
        return report
