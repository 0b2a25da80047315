"""Writes the newest vector of each machine to the online store from a thread of its own.

Why a thread: writing 5,000 machines takes ~70 ms of wall time, most of it Redis working through the
script (~10 ms of it is this process's CPU). On the batch path that was a 70 ms stall for every reading
of one batch a second, a large part of the latency tail; here it overlaps the next batch.

Rows wait in ``pending``, newest per machine: if Redis is slow or down, writes coalesce instead of
queueing, so memory stays bounded by the number of machines, and a failed write is retried (with a
capped backoff) unless a newer row for that machine arrived meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# (machine type, {machine id: row}) -> None; raises redis.RedisError when Redis does not take it
WriteRows = Callable[[str, dict[str, Any]], None]


class OnlineWriter:
    def __init__(self, write_rows: WriteRows, *, retry_errors: tuple[type[BaseException], ...],
                 max_backoff_s: float = 5.0) -> None:
        self._write_rows = write_rows
        self._retry_errors = retry_errors
        self._max_backoff_s = max_backoff_s
        self._pending: dict[str, dict[str, Any]] = {}  # machine type -> machine id -> row
        self._busy = False
        self._dropped: set[str] = set()  # discarded while a write was in flight: not to be retried
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="online-writer", daemon=True)
        self._thread.start()

    def submit(self, rows_by_type: dict[str, dict[str, Any]]) -> None:
        """Queue rows for writing; a newer row for a machine replaces one still waiting."""
        if not any(rows_by_type.values()):
            return
        with self._changed:
            for machine_type, rows in rows_by_type.items():
                self._pending.setdefault(machine_type, {}).update(rows)
            self._changed.notify_all()

    def discard(self, machine_ids: set[str]) -> None:
        """Drop rows still waiting for these machines (their partition moved to another worker, whose
        newer rows an old one written late would overwrite)."""
        with self._changed:
            for rows in self._pending.values():
                for machine_id in machine_ids & rows.keys():
                    del rows[machine_id]
            self._pending = {t: rows for t, rows in self._pending.items() if rows}
            if self._busy:
                self._dropped |= machine_ids
            self._changed.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far is written; False if that took longer than the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self, timeout_s: float) -> bool:
        """Write what is pending (up to the timeout), then stop the thread."""
        drained = self.drain(timeout_s)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        return drained

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed and not self._pending:
                    return
                batch, self._pending, self._busy = self._pending, {}, True
            failed: dict[str, dict[str, Any]] = {}
            for machine_type, rows in batch.items():
                try:
                    self._write_rows(machine_type, rows)
                except self._retry_errors as exc:
                    failed[machine_type] = rows
                    self.failures += 1
                    log.warning("online store write failed (%s); retrying", exc)
                except Exception:  # noqa: BLE001 - a bug must not stop the writer silently forever
                    log.exception("online store write failed unexpectedly; retrying")
                    failed[machine_type] = rows
                    self.failures += 1
            with self._changed:
                for machine_type, rows in failed.items():
                    newer = self._pending.setdefault(machine_type, {})
                    for machine_id, row in rows.items():
                        if machine_id not in self._dropped:
                            newer.setdefault(machine_id, row)  # a row submitted meanwhile is newer: keep it
                self._pending = {t: rows for t, rows in self._pending.items() if rows}
                self._dropped = set()
                self._busy = False
                self._changed.notify_all()
                if failed:
                    backoff = min(self._max_backoff_s, max(0.1, backoff * 2))
                    self._changed.wait(backoff)  # woken early only by close()
                else:
                    backoff = 0.0
