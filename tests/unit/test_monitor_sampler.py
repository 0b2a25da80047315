"""The sampler reads a bounded number of the newest messages per partition, each at most once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from forewarn.services.monitor.sampler import LatestSampler


class Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return f"{self._partition}:{self._offset}".encode()


class PartitionLog:
    """A topic's partitions as in-memory logs, read through the consumer calls the sampler makes."""

    def __init__(self, partitions: int, low: int = 0) -> None:
        self.high = dict.fromkeys(range(partitions), 0)
        self.low = low
        self.queue: list[Message] = []

    def append(self, partition: int, count: int) -> None:
        self.high[partition] += count

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = SimpleNamespace(error=None, partitions=dict.fromkeys(self.high))
        return SimpleNamespace(topics={topic: meta})

    def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool) -> tuple[int, int]:
        return min(self.low, self.high[tp.partition]), self.high[tp.partition]

    def assign(self, tps: list[Any]) -> None:
        self.queue = [Message(tp.partition, offset)
                      for tp in tps for offset in range(tp.offset, self.high[tp.partition])]

    def consume(self, count: int, timeout: float = 0) -> list[Message]:
        taken, self.queue = self.queue[:count], self.queue[count:]
        return taken

    def poll(self, timeout: float) -> Message | None:
        return self.queue.pop(0) if self.queue else None


def _offsets(messages: list[Any]) -> list[tuple[int, int]]:
    return sorted((m.partition(), m.offset()) for m in messages)


def test_reads_at_most_depth_newest_messages_of_each_moved_partition_once() -> None:
    log = PartitionLog(partitions=3)
    log.append(0, 10)
    log.append(1, 2)
    sampler = LatestSampler(log, "t", timeout_s=0.5, depth=3)
    assert _offsets(sampler.sample()) == [(0, 7), (0, 8), (0, 9), (1, 0), (1, 1)]
    assert sampler.sample() == []  # nothing moved: nothing read
    log.append(0, 2)
    assert _offsets(sampler.sample()) == [(0, 10), (0, 11)]  # only what is new, even under depth


def test_depth_one_is_the_newest_message_only() -> None:
    log = PartitionLog(partitions=2)
    log.append(0, 5)
    log.append(1, 5)
    assert _offsets(LatestSampler(log, "t", depth=1).sample()) == [(0, 4), (1, 4)]


def test_does_not_ask_for_offsets_retention_already_deleted() -> None:
    log = PartitionLog(partitions=1, low=8)
    log.append(0, 10)
    assert _offsets(LatestSampler(log, "t", depth=5).sample()) == [(0, 8), (0, 9)]


def test_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        LatestSampler(PartitionLog(1), "t", depth=0)
