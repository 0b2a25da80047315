"""The scorer's stream loop: features.vectors -> risk.scores, at least once.

Offsets are committed only after every score of the batch is acknowledged by the broker, so a crash
re-scores a batch (the alerter deduplicates) but never skips one.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaException
from prometheus_client import Counter, Gauge, Histogram

from forewarn import kafka, scores_wire, topics, vector_codec
from forewarn.services.scorer.model_watch import ModelHolder
from forewarn.services.scorer.scoring import EvidenceCache, ScoredBlock, score_block
from forewarn.services.scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

SCORED = Counter("forewarn_scorer_scored_total", "Feature vectors scored", ["model_version"])
BAD_MESSAGES = Counter("forewarn_scorer_bad_messages_total", "Feature vectors that could not be decoded")
BATCH_SECONDS = Histogram("forewarn_scorer_batch_seconds", "Time to score and deliver one batch")
MODEL_VERSION = Gauge("forewarn_scorer_model_version", "Version of the model serving now")


class DeliveryFailed(RuntimeError):
    pass


class ScoreLoop:
    def __init__(self, settings: ScorerSettings, holder: ModelHolder) -> None:
        self.settings = settings
        self.holder = holder
        self.stop = threading.Event()
        self.batches = 0
        self.evidence = EvidenceCache(settings.scorer.explain_refresh_ms)
        self._out_partitions: int | None = None

    def run(self) -> None:
        opts = self.settings.scorer
        while not self.stop.is_set() and self.holder.current is None:
            self.stop.wait(0.5)  # no champion yet: consume nothing rather than drop or park vectors
        if self.stop.is_set():
            return
        consumer = kafka.consumer(self.settings.kafka, group_id=opts.group_id,
                                  **{"session.timeout.ms": opts.session_timeout_ms})
        producer = kafka.producer(self.settings.kafka)
        consumer.subscribe([self.settings.kafka.topic(topics.FEATURE_VECTORS)])
        out_topic = self.settings.kafka.topic(topics.RISK_SCORES)
        try:
            while not self.stop.is_set():
                messages = kafka.consume_ready(consumer, opts.batch_size, opts.poll_timeout_s)
                if messages:
                    self._process(messages, producer, out_topic)
                    self._commit(consumer)
                    self.batches += 1
        finally:
            consumer.close()

    def _partitions(self, producer, topic: str) -> int:  # type: ignore[no-untyped-def]
        """Partitions of the output topic, looked up once (a broker restarting: retried for 60 s)."""
        deadline = time.monotonic() + 60
        while self._out_partitions is None:
            problem = ""
            try:
                metadata = producer.list_topics(topic, timeout=10).topics[topic]
                if metadata.error is None and metadata.partitions:
                    self._out_partitions = len(metadata.partitions)
                    break
                problem = str(metadata.error)
            except KafkaException as exc:
                problem = str(exc)
            if time.monotonic() > deadline or self.stop.is_set():
                raise DeliveryFailed(f"{topic} is not available ({problem}); create it (forewarn stack up creates "
                                     "the topics) or check the broker; not committing")
            log.warning("waiting for %s (%s)", topic, problem)
            self.stop.wait(1.0)
        return self._out_partitions

    @staticmethod
    def _commit(consumer) -> None:  # type: ignore[no-untyped-def]
        """Commit what was scored and delivered. A failed commit (broker restarting, group rebalancing,
        assignment lost after a session timeout) loses nothing: the batch is consumed again from the last
        committed offset and the alerter ignores scores it has seen (same event time). So carry on."""
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed (%s); those vectors will be scored again", exc)

    def _process(self, messages: list, producer, out_topic: str) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        bundle = self.holder.current  # one model for the whole batch
        assert bundle is not None
        opts = self.settings.scorer
        blocks: list[tuple[int, ScoredBlock]] = []
        for message in messages:
            if message.error():
                if message.error().fatal():
                    raise RuntimeError(f"fatal consume error: {message.error()}")
                # e.g. the topic does not exist yet: librdkafka keeps retrying, so do we.
                log.warning("consume error: %s", message.error())
                continue
            try:
                block = vector_codec.decode(message.value())
            except (ValueError, OSError, KeyError) as exc:
                # A poison message is logged with its coordinates and skipped, never retried forever.
                BAD_MESSAGES.inc()
                log.error("undecodable feature block: %s", exc, extra={"fields": {
                    "topic": message.topic(), "partition": message.partition(), "offset": message.offset()}})
                continue
            blocks.append((message.partition(), score_block(bundle, block, explain_above=opts.explain_above,
                                                            top_k=opts.top_k, evidence=self.evidence)))
        errors: list[str] = []

        def on_delivery(err, _msg) -> None:  # type: ignore[no-untyped-def]
            if err is not None:
                errors.append(str(err))

        scored = 0
        out_partitions = self._partitions(producer, out_topic)
        for source_partition, scores in blocks:
            # Envelopes (forewarn.scores_wire) to the partition of the block's readings, so each machine's
            # scores stay in one partition, in order; a topic with fewer partitions folds them together.
            for value in scores_wire.envelopes(scores.payloads()):
                producer.produce(out_topic, value=value, partition=source_partition % out_partitions,
                                 on_delivery=on_delivery)
                producer.poll(0)
            scored += len(scores)
        remaining = producer.flush(30)
        if remaining or errors:
            raise DeliveryFailed(f"{remaining} scores undelivered, errors: {errors[:3]}; not committing")
        SCORED.labels(bundle.version).inc(scored)
        MODEL_VERSION.set(float(bundle.version) if bundle.version.isdigit() else 0)
        BATCH_SECONDS.observe(time.perf_counter() - started)
