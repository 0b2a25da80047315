"""The stream entrypoint: consume ``risk.scores`` in batches, apply them, commit, repeat; tick between
batches for escalations and the outbox sweep. Processing is synchronous, so at a stop or a rebalance there
is never a half-applied batch: the current one finishes and is committed, or it is re-consumed.

With a rebuilder, the state of every partition must be in Redis before a score of it is applied: when
Redis lost it (restarted empty), the loop rebuilds it first from ``risk.scores`` and ``alerts`` (see
rebuild.py), on the batch that notices or at the next tick, whichever comes first.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from forewarn import kafka, scores_wire
from forewarn.schemas import RiskScore

from . import metrics
from .service import AlertService, ScoreInput
from .store import StateLost

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Consumed:
    """A consumed score document, parsed but not validated yet, and where it came from."""

    source: str  # 'topic:partition'
    offset: int  # scores_wire.position: the Kafka offset and the place in its envelope
    doc: Any


@dataclass(frozen=True, slots=True)
class Peek:
    machine_id: str
    machine_type: str
    p_failure: float
    rul: float | None


def peek(doc: Any) -> Peek | None:
    """What the triage needs from a score document, or None when it is not plainly a score (then the full
    validation runs and says what is wrong)."""
    if not isinstance(doc, dict):
        return None
    machine_id, machine_type, p, rul = doc.get("machine_id"), doc.get("machine_type"), doc.get("p_failure"), \
        doc.get("rul")
    if type(machine_id) is not str or type(machine_type) is not str:
        return None
    if not isinstance(p, float | int) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        return None
    if rul is not None and (not isinstance(rul, float | int) or isinstance(rul, bool)):
        return None
    return Peek(machine_id, machine_type, float(p), None if rul is None else float(rul))


class ScoreLoop:
    def __init__(
        self,
        consumer: Any,
        topic: str,
        service: AlertService,
        *,
        batch_size: int = 500,
        poll_timeout_s: float = 0.5,
        tick_interval_s: float = 1.0,
        sweep_interval_s: float = 30.0,
        error_backoff_s: float = 1.0,
        rebuilder: Any = None,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.service = service
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.tick_interval_s = tick_interval_s
        self.sweep_interval_s = sweep_interval_s
        self.error_backoff_s = error_backoff_s
        self.rebuilder = rebuilder  # rebuild.StateRebuilder, or None: trust Redis to keep the state
        self.rebuilds = 0
        self.assigned: set[tuple[str, int]] = set()
        self.healthy = True
        self.last_error = ""
        self.batches = 0

    # ---- readiness -------------------------------------------------------------------------------
    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("partitions assigned", extra={"fields": {"partitions": sorted(p.partition for p in partitions)}})

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in partitions}

    # ---- running ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        self._guarded(lambda: self.service.sweep(startup=True), "startup recovery")
        next_tick = next_sweep = time.monotonic()
        next_sweep += self.sweep_interval_s
        while not stop.is_set():
            messages = kafka.consume_ready(self.consumer, self.batch_size, self.poll_timeout_s)
            if messages:
                self.process(messages)
            now = time.monotonic()
            if now >= next_tick:
                if self.rebuilder is not None and self.assigned:
                    self._guarded(self._check_state, "state check")
                self._guarded(self.service.tick, "escalation tick")
                next_tick = now + self.tick_interval_s
            if now >= next_sweep:
                self._guarded(self.service.sweep, "outbox sweep")
                next_sweep = now + self.sweep_interval_s
        log.info("score loop stopped after its last batch was committed")

    def _guarded(self, step: Any, what: str) -> None:
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
        partitions = sorted({int(s.rsplit(":", 1)[1]) for s in missing if s.rsplit(":", 1)[0] == self.topic})
        if not partitions:
            return
        committed = self.consumer.committed([TopicPartition(self.topic, p) for p in partitions], timeout=10)
        ends = {tp.partition: max(int(tp.offset), 0) for tp in committed}
        self.healthy = False
        self.last_error = f"rebuilding the state of {self.topic} partitions {partitions} (Redis lost it)"
        log.warning("alerter state missing from Redis; rebuilding it from risk.scores and alerts",
                    extra={"fields": {"partitions": partitions, "committed": {str(p): o for p, o in ends.items()}}})
        report = self.rebuilder.rebuild(self.topic, ends)
        self.rebuilds += 1
        self.healthy = True
        log.warning("alerter state rebuilt", extra={"fields": {
            "partitions": partitions, "scores_replayed": report.scores, "dedup_keys": report.keys,
            "alerts": report.alerts, "recorded_events_applied": report.recorded_applied,
            "seconds": round(report.seconds, 3)}})

    def _apply(self, consumed: list[Consumed]) -> None:
        guarded = self.rebuilder is not None
        try:
            self.service.handle_scores(self._triage(consumed, guarded), require_loaded=guarded)
        except StateLost as lost:
            if not guarded:
                raise
            self.rebuild(lost.sources)
            self.service.handle_scores(self._triage(consumed, True), require_loaded=True)

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
                    "source": c.source, "position": c.offset, "error": exc.errors(include_url=False)[:3]}})
                continue
            items.append(ScoreInput(source=c.source, offset=c.offset, score=score))
        if invalid:
            metrics.SCORES.labels("invalid").inc(invalid)
        return items

    def process(self, messages: list[Message]) -> None:
        """Apply one consumed batch and commit it; on failure rewind so it is consumed again."""
        consumed: list[Consumed] = []
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        invalid = 0
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consumer error: %s", error)
                continue
            topic, partition, offset = str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
            position = (topic, partition)
            first.setdefault(position, offset)
            last[position] = offset
            try:
                docs = scores_wire.decode_value(message.value() or b"")
            except orjson.JSONDecodeError as exc:
                invalid += 1
                log.warning("skipping a risk score that is not JSON", extra={"fields": {
                    "topic": topic, "partition": partition, "offset": offset, "error": str(exc)}})
                continue
            source = f"{topic}:{partition}"
            consumed.extend(Consumed(source, scores_wire.position(offset, i), doc) for i, doc in enumerate(docs))
        if invalid:
            metrics.SCORES.labels("invalid").inc(invalid)
        if not last:
            return
        try:
            with metrics.BATCH_SECONDS.time():
                self._apply(consumed)
                self.consumer.commit(
                    offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()], asynchronous=False
                )
        except Exception as exc:  # noqa: BLE001 - the batch is consumed again; applied parts are skipped
            self.healthy = False
            self.last_error = f"batch failed: {exc}"
            log.exception("batch failed; rewinding to consume it again",
                          extra={"fields": {"partitions": {f"{t}:{p}": o for (t, p), o in first.items()}}})
            for (t, p), offset in first.items():
                try:
                    self.consumer.seek(TopicPartition(t, p, offset))
                except KafkaException:
                    log.warning("could not rewind %s:%s (revoked?)", t, p)
            time.sleep(self.error_backoff_s)
            return
        self.healthy = True
        self.batches += 1
