"""The features service's online writer: coalesces rows per machine, retries failures, drains on demand."""

from __future__ import annotations

import threading
import time

import pytest

from forewarn.services.features.online_writer import OnlineWriter


class Flaky(Exception):
    pass


class Store:
    """Records writes; fails while ``down`` is set; can hold a write until released."""

    def __init__(self) -> None:
        self.rows: dict[str, object] = {}
        self.calls: list[dict[str, object]] = []
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write(self, machine_type: str, rows: dict[str, object]) -> None:
        self.entered.set()
        self.gate.wait(5)
        self.calls.append(dict(rows))
        if self.down:
            raise Flaky("redis down")
        self.rows.update(rows)


@pytest.fixture
def store() -> Store:
    return Store()


def _writer(store: Store) -> OnlineWriter:
    writer = OnlineWriter(store.write, retry_errors=(Flaky,), max_backoff_s=0.05)
    writer.start()
    return writer


def test_rows_submitted_while_a_write_is_in_flight_coalesce_newest_first(store: Store) -> None:
    writer = _writer(store)
    store.gate.clear()
    writer.submit({"pump": {"a": 1}})
    assert store.entered.wait(2)  # the first write is in flight, held
    writer.submit({"pump": {"b": 1}})
    writer.submit({"pump": {"b": 2, "c": 1}})
    store.gate.set()
    assert writer.close(5)
    assert store.rows == {"a": 1, "b": 2, "c": 1}
    assert store.calls == [{"a": 1}, {"b": 2, "c": 1}]  # two writes, not three


def test_a_failed_write_is_retried_but_never_over_a_newer_row(store: Store) -> None:
    writer = _writer(store)
    store.down = True
    writer.submit({"pump": {"a": 1, "b": 1}})
    assert not writer.drain(0.3)  # Redis is down: nothing can be written yet
    writer.submit({"pump": {"b": 2}})
    store.down = False
    assert writer.drain(5)
    assert store.rows == {"a": 1, "b": 2}
    assert writer.failures >= 1
    writer.close(1)


def test_close_writes_what_is_pending_then_stops_the_thread(store: Store) -> None:
    writer = _writer(store)
    for i in range(50):
        writer.submit({"pump": {f"m{i}": i}, "fan": {f"f{i}": i}})
    assert writer.close(5)
    assert len(store.rows) == 100
    assert writer._thread is not None and not writer._thread.is_alive()



def test_rows_of_machines_handed_to_another_worker_are_not_written_late(store: Store) -> None:
    writer = _writer(store)
    store.down = True
    writer.submit({"pump": {"a": 1, "b": 1}, "fan": {"c": 1}})
    assert not writer.drain(0.2)
    writer.discard({"a", "c"})
    store.down = False
    assert writer.drain(5)
    assert store.rows == {"b": 1}
    writer.close(1)


def test_a_discard_during_a_failing_write_is_not_undone_by_its_retry(store: Store) -> None:
    writer = _writer(store)
    store.down = True
    store.gate.clear()
    writer.submit({"pump": {"a": 1, "b": 1}})
    assert store.entered.wait(2)  # in flight, about to fail
    writer.discard({"a"})
    store.gate.set()
    deadline = time.monotonic() + 2
    while writer.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    store.down = False
    assert writer.drain(5)
    assert store.rows == {"b": 1}
    writer.close(1)
