"""Sampling a topic by its newest message per partition, outside any consumer group.

Consuming all of ``features.vectors`` would make the monitor fetch and decode every vector (~1.4 KB each)
of the pipeline, a cost that grows with the plant. Instead, every ``sample_interval_s`` the sampler reads
the newest message of each partition that has moved since the last look: one block per partition per
interval, whatever the rate, so the monitor's cost per reading falls as the plant grows. Blocks hold many
vectors (the features worker emits one per partition and batch), so this still sees every machine type.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from forewarn import kafka

log = logging.getLogger(__name__)

METADATA_REFRESH_S = 30.0


class LatestSampler:
    def __init__(self, consumer: Any, topic: str, timeout_s: float = 1.0) -> None:
        self.consumer = consumer
        self.topic = topic
        self.timeout_s = timeout_s
        self._partitions: list[int] = []
        self._listed_at = 0.0
        self._seen: dict[int, int] = {}

    def _partition_ids(self) -> list[int]:
        if not self._partitions or time.monotonic() - self._listed_at > METADATA_REFRESH_S:
            metadata = self.consumer.list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
            if metadata is not None and metadata.error is None:
                self._partitions = sorted(metadata.partitions)
            self._listed_at = time.monotonic()
        return self._partitions

    def sample(self) -> list[Any]:
        """The newest message of every partition that received one since the previous call."""
        from confluent_kafka import KafkaException, TopicPartition

        wanted = []
        try:
            for partition in self._partition_ids():
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                                 timeout=self.timeout_s, cached=False)
                if high > 0 and high - 1 > self._seen.get(partition, -1):
                    wanted.append(TopicPartition(self.topic, partition, high - 1))
        except KafkaException as exc:
            log.warning("cannot sample %s: %s", self.topic, exc)
            return []
        if not wanted:
            return []
        self.consumer.assign(wanted)
        messages = []
        deadline = time.monotonic() + self.timeout_s
        pending = {tp.partition for tp in wanted}
        while pending and time.monotonic() < deadline:
            for message in kafka.consume_ready(self.consumer, len(pending), 0.2):
                if message.error() is not None or message.partition() not in pending:
                    continue
                pending.discard(message.partition())
                self._seen[message.partition()] = message.offset()
                messages.append(message)
        return messages
