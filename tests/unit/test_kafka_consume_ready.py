"""consume_ready: take what is queued at once; wait only when nothing is."""

from __future__ import annotations

from forewarn.kafka import consume_ready


class FakeConsumer:
    def __init__(self, queued: list[str], arriving: str | None = None) -> None:
        self.queued = list(queued)
        self.arriving = arriving
        self.waits: list[float] = []

    def consume(self, num: int, timeout: float) -> list[str]:
        self.waits.append(timeout)
        taken, self.queued = self.queued[:num], self.queued[num:]
        return taken

    def poll(self, timeout: float) -> str | None:
        self.waits.append(timeout)
        if self.arriving is None:
            return None
        first, self.arriving = self.arriving, None
        return first


def test_queued_messages_are_taken_without_waiting() -> None:
    consumer = FakeConsumer(["a", "b", "c"])
    assert consume_ready(consumer, 2, 0.05) == ["a", "b"]
    assert consumer.waits == [0]


def test_an_idle_consumer_waits_for_the_first_message_then_takes_what_came_with_it() -> None:
    consumer = FakeConsumer([], arriving="a")
    consumer_queue_after_first = ["b", "c"]

    def poll(timeout: float) -> str:
        consumer.waits.append(timeout)
        consumer.queued = consumer_queue_after_first
        return "a"

    consumer.poll = poll  # type: ignore[method-assign]
    assert consume_ready(consumer, 10, 0.05) == ["a", "b", "c"]
    assert consumer.waits == [0, 0.05, 0]


def test_nothing_within_the_timeout_is_an_empty_batch() -> None:
    consumer = FakeConsumer([])
    assert consume_ready(consumer, 10, 0.05) == []
    assert consume_ready(FakeConsumer([], arriving="x"), 1, 0.05) == ["x"]
