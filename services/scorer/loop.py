"""The scorer's stream loop: features.vectors -> risk.scores, at least once, on the shared
:class:`forewarn.kafka.BatchLoop`.

Offsets are committed only after every score of the batch is acknowledged by the broker, so a crash
re-scores a batch (the alerter deduplicates) but never skips one. A batch whose scores cannot be delivered
takes the process down (``on_failure="raise"``): its restart resumes at the last commit.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from forewarn import kafka, scores_wire, topics, vector_codec
from forewarn.services.scorer.metrics import ScorerMetrics
from forewarn.services.scorer.model_watch import ModelHolder
from forewarn.services.scorer.scoring import EvidenceCache, score_block
from forewarn.services.scorer.settings import ScorerSettings

log = logging.getLogger(__name__)


class ScoreLoop:
    def __init__(self, settings: ScorerSettings, holder: ModelHolder, metrics: ScorerMetrics) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self.stop = threading.Event()
        self.evidence = EvidenceCache(settings.scorer.explain_refresh_ms)
        self.out_topic = settings.kafka.topic(topics.RISK_SCORES)
        self._out_partitions: int | None = None
        self._producer: Any = None
        self.stream: kafka.BatchLoop[Any] | None = None
        self._lag_reported_at = 0.0

    @property
    def batches(self) -> int:
        return 0 if self.stream is None else self.stream.batches

    def run(self) -> None:
        opts = self.settings.scorer
        while not self.stop.is_set() and self.holder.current is None:
            self.stop.wait(0.5)  # no champion yet: consume nothing rather than drop or park vectors
        if self.stop.is_set():
            return
        consumer = kafka.consumer(self.settings.kafka, group_id=opts.group_id,
                                  **{"session.timeout.ms": opts.session_timeout_ms})
        self._producer = kafka.producer(self.settings.kafka)
        consumer.subscribe([self.settings.kafka.topic(topics.FEATURE_VECTORS)])
        self.stream = kafka.BatchLoop(consumer, vector_codec.decode, self._score, batch_size=opts.batch_size,
                                      poll_timeout_s=opts.poll_timeout_s, on_error=self._on_error,
                                      on_failure="raise", batch_seconds=self.metrics.batch_seconds)
        try:
            self.stream.run(self.stop, between_batches=self._report_lag)
        finally:
            consumer.close()

    def _report_lag(self) -> None:
        """Consumer lag, at most once a second, from what the consumer already knows (the high watermark comes
        with every fetch: no broker round trip). Partitions with no position yet are left out."""
        from confluent_kafka import KafkaException

        now = time.monotonic()
        if self.stream is None or now - self._lag_reported_at < 1.0:
            return
        self._lag_reported_at = now
        consumer = self.stream.consumer
        try:
            lag = 0
            for tp in consumer.position(consumer.assignment()):
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    lag += max(0, high - tp.offset)
        except KafkaException:
            return
        self.metrics.consumer_lag.set(lag)

    def _on_error(self, exc: Exception, message: Any) -> bool:
        """A poison block is logged with its coordinates and skipped, never retried forever; a consumer error
        (e.g. the topic does not exist yet) is retried by librdkafka, so the loop goes on."""
        if isinstance(exc, kafka.KafkaClientError):
            return kafka.log_and_skip(exc, message)
        self.metrics.bad_messages.inc()
        log.error("undecodable feature block: %s", exc, extra={"fields": kafka.where(message)})
        return True

    def _partitions(self) -> int:
        """Partitions of the output topic, looked up once (a broker restarting: retried for 60 s)."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + 60
        while self._out_partitions is None:
            problem = ""
            try:
                metadata = self._producer.list_topics(self.out_topic, timeout=10).topics[self.out_topic]
                if metadata.error is None and metadata.partitions:
                    self._out_partitions = len(metadata.partitions)
                    break
                problem = str(metadata.error)
            except KafkaException as exc:
                problem = str(exc)
            if time.monotonic() > deadline or self.stop.is_set():
                raise kafka.KafkaUnavailable(f"{self.out_topic} is not available ({problem}); create it (forewarn "
                                             "stack up creates the topics) or check the broker; not committing")
            log.warning("waiting for %s (%s)", self.out_topic, problem)
            self.stop.wait(1.0)
        return self._out_partitions

    def _score(self, blocks: list[kafka.Decoded[Any]]) -> kafka.Delivery:
        bundle = self.holder.current  # one model for the whole batch
        assert bundle is not None
        opts = self.settings.scorer
        delivery = kafka.Delivery(self._producer)
        out_partitions = self._partitions()
        scored = 0
        for block in blocks:
            scores = score_block(bundle, block.value, explain_above=opts.explain_above, top_k=opts.top_k,
                                 evidence=self.evidence)
            # Envelopes (forewarn.scores_wire) to the partition of the block's readings, so each machine's
            # scores stay in one partition, in order; a topic with fewer partitions folds them together.
            for value in scores_wire.envelopes(scores.payloads()):
                delivery.produce(self.out_topic, value, partition=block.partition % out_partitions)
            scored += len(scores)
            if len(block.value.ts):
                self.metrics.reading_age.observe(max(0.0, time.time() - float(block.value.ts.min()) / 1000.0))
        self.metrics.scored.labels(bundle.version).inc(scored)
        self.metrics.model_version.set(float(bundle.version) if bundle.version.isdigit() else 0)
        return delivery
