"""The stream entrypoint: consume ``risk.scores`` and ``model.health`` in batches, apply them, commit,
repeat; tick between batches for escalations and the outbox sweep. Processing is synchronous, so at a stop
or a rebalance there is never a half-applied batch: the current one finishes and is committed, or it is
re-consumed.

One consumer subscribes to both topics and each batch is dispatched by topic: scores go through the
triage, model-health judgements (a handful per monitor window) are mapped to scores
(forewarn.alerting.model_health) and always go to the policy. Both then take the one path of
``AlertService.handle_scores`` in one transaction: the same positions, outboxes and commit, so a model-health
alert is exactly-once in the same sense as a machine alert, with no second consumer, group or thread.

With a rebuilder, the state of every partition must be in Redis before an input of it is applied: when
Redis lost it (restarted empty), the loop rebuilds it first from the input topics and ``alerts`` (see
adapters/rebuild.py), on the batch that notices or at the next tick, whichever comes first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Message, TopicPartition
from pydantic import ValidationError

from forewarn import kafka, scores_wire
from forewarn.alerting.changes import ScoreInput
from forewarn.alerting.model_health import health_score
from forewarn.alerting.triage import peek
from forewarn.schemas import ModelHealthEvent, RiskScore

from ..adapters.rebuild import StateRebuilder
from ..metrics import AlerterMetrics
from ..ports import StateLost
from ..service import AlertService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Consumed:
    """A consumed input document (a score or a model-health judgement), parsed but not validated yet, and
    where it came from."""

    source: str  # 'topic:partition'
    position: int  # scores_wire.position: the Kafka offset and the place in its envelope
    doc: Any


@dataclass(frozen=True)
class LoopTiming:
    batch_size: int = 500
    poll_timeout_s: float = 0.5
    tick_interval_s: float = 1.0
    sweep_interval_s: float = 30.0
    error_backoff_s: float = 1.0


class AlertStreamLoop:
    def __init__(
        self, consumer: Any, topic: str, service: AlertService, metrics: AlerterMetrics, *,
        timing: LoopTiming = LoopTiming(), rebuilder: StateRebuilder | None = None, health_topic: str | None = None,
    ) -> None:
        self.consumer, self.topic, self.service, self.metrics = consumer, topic, service, metrics
        self.health_topic = health_topic  # None: scores only
        self.topics = [topic] if health_topic is None else [topic, health_topic]
        self.timing = timing
        self.rebuilder = rebuilder  # None: trust Redis to keep the state
        self.rebuilds = 0
        self.assigned: set[tuple[str, int]] = set()
        self.healthy = True
        self.last_error = ""
        self.batches = 0
        # The one consume -> handle -> commit cycle (forewarn.kafka); a failed batch is rewound and consumed
        # again, and the scores of it that were applied are recognised by their positions and skipped.
        self.batch_loop: kafka.BatchLoop[list[Any]] = kafka.BatchLoop(
            consumer, self._decode, self._handle, batch_size=timing.batch_size,
            poll_timeout_s=timing.poll_timeout_s, on_error=self._on_error, on_failure="rewind",
            error_backoff_s=timing.error_backoff_s, batch_seconds=metrics.batch_seconds,
        )

    # ---- readiness -------------------------------------------------------------------------------
    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("partitions assigned", extra={"fields": {"partitions": sorted(p.partition for p in partitions)}})

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in partitions}

    # ---- running ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        self._guarded(lambda: self.service.sweep(startup=True), "startup recovery")
        next_tick = next_sweep = time.monotonic()
        next_sweep += self.timing.sweep_interval_s
        while not stop.is_set():
            messages = kafka.consume_ready(self.consumer, self.timing.batch_size, self.timing.poll_timeout_s)
            if messages:
                self.process(messages)
            now = time.monotonic()
            if now >= next_tick:
                if self.rebuilder is not None and self.assigned:
                    self._guarded(self._check_state, "state check")
                self._guarded(self.service.tick, "escalation tick")
                next_tick = now + self.timing.tick_interval_s
            if now >= next_sweep:
                self._guarded(self.service.sweep, "outbox sweep")
                next_sweep = now + self.timing.sweep_interval_s
        log.info("alert stream loop stopped after its last batch was committed")

    def _guarded(self, step: Callable[[], object], what: str) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - retried at the next interval; the stream goes on
            log.exception("%s failed; retrying later", what)
            self.last_error = f"{what}: {exc}"

    def _check_state(self) -> None:
        missing = self.service.store.missing_loaded(f"{t}:{p}" for t, p in sorted(self.assigned))
        if missing:
            self.rebuild(missing)

    def rebuild(self, sources: list[str]) -> None:
        """Rebuild the state of the partitions (of ours) that Redis lost, up to their committed offsets."""
        assigned = [f"{t}:{p}" for t, p in sorted(self.assigned)]
        missing = self.service.store.missing_loaded([*sources, *assigned])
        for topic in self.topics:
            partitions = sorted({int(s.rsplit(":", 1)[1]) for s in missing if s.rsplit(":", 1)[0] == topic})
            if partitions:
                self._rebuild_topic(topic, partitions)

    def _rebuild_topic(self, topic: str, partitions: list[int]) -> None:
        if self.rebuilder is None:
            return
        committed = self.consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        ends = {tp.partition: max(int(tp.offset), 0) for tp in committed}
        self.healthy = False
        self.last_error = f"rebuilding the state of {topic} partitions {partitions} (Redis lost it)"
        log.warning("alerter state missing from Redis; rebuilding it from its input and alerts", extra={"fields": {
            "topic": topic, "partitions": partitions, "committed": {str(p): o for p, o in ends.items()}}})
        report = self.rebuilder.rebuild(topic, ends)
        self.rebuilds += 1
        self.healthy = True
        log.warning("alerter state rebuilt", extra={"fields": {
            "topic": topic, "partitions": partitions, "scores_replayed": report.scores, "dedup_keys": report.keys,
            "alerts": report.alerts, "recorded_events_applied": report.recorded_applied,
            "seconds": round(report.seconds, 3)}})

    def _apply(self, consumed: list[Consumed], health: list[Consumed]) -> None:
        guarded = self.rebuilder is not None
        judgements = self._health_inputs(health)
        try:
            self.service.handle_scores([*self._triage(consumed, guarded), *judgements], require_loaded=guarded)
        except StateLost as lost:
            if not guarded:
                raise
            self.rebuild(lost.sources)
            self.service.handle_scores([*self._triage(consumed, True), *judgements], require_loaded=True)

    def _health_inputs(self, health: list[Consumed]) -> list[ScoreInput]:
        """Model-health judgements as policy inputs, in consumption order; invalid ones are logged and
        skipped. Never triaged: there are a few per monitor window, and a clear one is what resolves."""
        items: list[ScoreInput] = []
        for c in health:
            try:
                event = ModelHealthEvent.model_validate(c.doc)
            except ValidationError as exc:
                self.metrics.scores.labels("invalid").inc()
                log.warning("skipping an invalid model-health event", extra={"fields": {
                    "source": c.source, "position": c.position, "error": exc.errors(include_url=False)[:3]}})
                continue
            items.append(ScoreInput(source=c.source, position=c.position, score=health_score(event)))
        return items

    def _triage(self, consumed: list[Consumed], require_loaded: bool) -> list[ScoreInput]:
        """The scores that need the policy, fully validated, in consumption order (see needs_policy)."""
        peeked = [(c, peek(c.doc)) for c in consumed]
        keep = iter(self.service.needs_policy([p for _, p in peeked if p is not None],
                                              sorted({c.source for c in consumed}), require_loaded=require_loaded))
        items: list[ScoreInput] = []
        invalid = 0
        for c, p in peeked:
            if p is not None and not next(keep):  # unpeekable documents go to the full validation
                continue
            try:
                score = RiskScore.model_validate(c.doc)
            except ValidationError as exc:
                invalid += 1
                log.warning("skipping an invalid risk score", extra={"fields": {
                    "source": c.source, "position": c.position, "error": exc.errors(include_url=False)[:3]}})
                continue
            items.append(ScoreInput(source=c.source, position=c.position, score=score))
        if invalid:
            self.metrics.scores.labels("invalid").inc(invalid)
        return items

    def _decode(self, value: bytes) -> list[Any]:
        return scores_wire.decode_value(value)

    def _on_error(self, exc: Exception, message: Any) -> bool:
        """Undecodable input messages are counted and skipped; consumer errors are logged and skipped."""
        if isinstance(exc, orjson.JSONDecodeError):
            self.metrics.scores.labels("invalid").inc()
            log.warning("skipping an input message that is not JSON",
                        extra={"fields": {"where": kafka.where(message), "error": str(exc)}})
            return True
        return kafka.log_and_skip(exc, message)

    def _handle(self, batch: list[kafka.Decoded[list[Any]]]) -> None:
        scores: list[Consumed] = []
        health: list[Consumed] = []
        for item in batch:
            into = health if item.topic == self.health_topic else scores
            into.extend(Consumed(f"{item.topic}:{item.partition}", scores_wire.position(item.offset, i), doc)
                        for i, doc in enumerate(item.value))
        self._apply(scores, health)

    def process(self, messages: list[Message]) -> None:
        """Apply one consumed batch and commit it; on failure rewind so it is consumed again."""
        self.batch_loop.process(messages)
        self.healthy, self.batches = self.batch_loop.healthy, self.batch_loop.batches
        if not self.healthy:
            self.last_error = self.batch_loop.last_error
