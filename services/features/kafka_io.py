"""The features worker's Kafka adapters besides faust's consumer: the vector sink and the replay reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from forewarn import kafka, vector_codec
from forewarn.services.features.processor import BatchOutput, SourceRecord
from forewarn.settings import KafkaSettings

# Kafka's default message.max.bytes is 1 MB; stay well below it with the Arrow framing on top.
MAX_BLOCK_BYTES = 800_000


class KafkaVectorSink:
    """Feature blocks to ``vectors_topic`` at the source partition's number (the scorer reads a
    partition's machines in order), rejects to ``dlq_topic`` with where they came from; confirmed by the
    broker before :meth:`publish` returns."""

    def __init__(self, producer: Any, *, vectors_topic: str, dlq_topic: str, source_topic: str,
                 timeout_s: float = 30.0) -> None:
        self.producer = producer  # confluent_kafka.Producer
        self.vectors_topic = vectors_topic
        self.dlq_topic = dlq_topic
        self.source_topic = source_topic
        self.timeout_s = timeout_s

    def publish(self, output: BatchOutput) -> None:
        delivery = kafka.Delivery(self.producer)
        for partition, blocks in output.blocks.items():
            for block in blocks:
                for part in vector_codec.split(block, MAX_BLOCK_BYTES):
                    delivery.produce(self.vectors_topic, vector_codec.encode(part), partition=partition,
                                     headers={"content-type": vector_codec.CONTENT_TYPE})
        for rejected in output.rejected:
            record = rejected.record
            delivery.produce(self.dlq_topic, record.value, headers={
                "reason": rejected.reason, "source": f"{self.source_topic}/{record.partition}/{record.offset}",
                "stage": "features"})
        # Raises DeliveryFailed: the batch must not be acked (see app.py: the worker exits and replays it).
        delivery.wait(self.timeout_s, what="feature vectors and rejects")


class KafkaSourceReader:
    """One source partition between two offsets, outside the consumer group (the replay after a restore)."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic

    def read(self, partition: int, start: int, end: int) -> Iterator[list[SourceRecord]]:
        for messages in kafka.read_range(self.settings, self.topic, partition, start, end):
            yield [SourceRecord(m.partition(), m.offset(), m.value()) for m in messages]
