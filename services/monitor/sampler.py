"""Sampling a topic by its newest messages per partition, outside any consumer group.

Consuming all of ``features.vectors`` would make the monitor fetch and decode every vector (~1.4 KB each)
of the pipeline, a cost that grows with the plant. Instead, every ``sample_interval_s`` the sampler reads
at most ``depth`` of the newest messages of each partition that has moved since the last look: a bounded
number of blocks per partition per interval, whatever the rate, so the monitor's cost per reading falls as
the plant grows. Blocks hold many vectors (the features worker emits one per partition and batch), but at
a low rate a block holds a few rows of one machine type: ``depth`` > 1 lets a small plant's window still
collect enough rows of every type to be judged (one block per look gave a 27-pump fleet 50-70 pump rows
per window, under the 100 needed).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from forewarn import kafka

log = logging.getLogger(__name__)

METADATA_REFRESH_S = 30.0


class LatestSampler:
    def __init__(self, consumer: Any, topic: str, timeout_s: float = 1.0, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.consumer = consumer
        self.topic = topic
        self.timeout_s = timeout_s
        self.depth = depth
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
        """Up to ``depth`` of the newest messages of every partition that moved since the previous call."""
        from confluent_kafka import KafkaException, TopicPartition

        wanted = []
        last: dict[int, int] = {}  # partition -> the offset of its newest message, where reading stops
        try:
            for partition in self._partition_ids():
                low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                                timeout=self.timeout_s, cached=False)
                seen = self._seen.get(partition, -1)
                if high > 0 and high - 1 > seen:
                    start = max(seen + 1, high - self.depth, low)
                    wanted.append(TopicPartition(self.topic, partition, start))
                    last[partition] = high - 1
        except KafkaException as exc:
            log.warning("cannot sample %s: %s", self.topic, exc)
            return []
        if not wanted:
            return []
        self.consumer.assign(wanted)
        messages = []
        deadline = time.monotonic() + self.timeout_s
        while last and time.monotonic() < deadline:
            for message in kafka.consume_ready(self.consumer, self.depth * len(last), 0.2):
                partition = message.partition()
                if message.error() is not None or partition not in last:
                    continue
                # Transaction markers and compaction leave gaps: stop at the newest offset seen, not a count.
                self._seen[partition] = message.offset()
                messages.append(message)
                if message.offset() >= last[partition]:
                    del last[partition]
        return messages
