"""The local mirror of the trail: a JSON-lines file, appended under an exclusive file lock so that two
processes appending at once still make one chain, and the records not yet on Kafka sent after it.

The file is the writer's copy; the Kafka ``audit`` topic (never compacted or expired) is the one outside
the writer's reach. ``<file>.sent`` remembers the last seq Kafka confirmed, so records written while Kafka
was away go with the next append (or ``forewarn audit send``), and a cut-off end shows in ``verify``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from forewarn.audit import chain
from forewarn.errors import UserError

_TAIL_BYTES = 1 << 20  # a record is far smaller; the last line is found within this much of the end


class Sender(Protocol):
    @property
    def destination(self) -> str: ...

    def send(self, records: list[dict[str, Any]]) -> str | None:
        """Deliver the records in order; None when all were confirmed, else why not (in words)."""
        ...


@dataclass(frozen=True)
class Appended:
    record: dict[str, Any]
    path: Path
    sent: bool
    note: str  # where the record went, in words (also why it was not sent)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _last_line(path: Path) -> str | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read().rstrip(b"\n")
    return tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")


def default_trail_id(path: Path) -> str:
    return f"{socket.gethostname()}:{path.resolve()}"


class AuditTrail:
    def __init__(self, path: Path, *, sender: Sender | None = None, trail_id: str | None = None) -> None:
        self.path = Path(path)
        self.sender = sender
        self.trail_id = trail_id or default_trail_id(self.path)
        self._lock = self.path.with_name(self.path.name + ".lock")
        self._send_lock = self.path.with_name(self.path.name + ".send.lock")
        self._sent = self.path.with_name(self.path.name + ".sent")

    # ---- writing ---------------------------------------------------------------------------------------
    def append(self, *, actor: str, action: str, kind: str, object_id: str,
               details: Mapping[str, Any] | None = None, at: datetime | None = None) -> Appended:
        """Write one record (under the lock, synced), then send what Kafka has not confirmed yet."""
        with _locked(self._lock):
            text = _last_line(self.path)
            last = None
            if text is not None:
                try:
                    last = json.loads(text)
                    int(last["seq"]), str(last["hash"]), str(last["trail"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise UserError(
                        f"the last line of the audit trail {self.path} is not a record ({exc}), so the next one "
                        f"cannot be chained to it: run 'forewarn audit verify --file {self.path}' and repair "
                        "the file from the Kafka copy") from exc
            record = chain.next_record(last, trail=self.trail_id, actor=actor, action=action, kind=kind,
                                       object_id=object_id, details=details, at=at or datetime.now(UTC))
            line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        sent, note = self.send_pending()
        return Appended(record, self.path, sent, note)

    def send_pending(self) -> tuple[bool, str]:
        """Send every record after the last one Kafka confirmed; (all sent?, what happened in words)."""
        if self.sender is None:
            return False, (f"not sent to Kafka (Kafka audit off here); it waits in {self.path} for the next "
                           "writer that sends, or 'forewarn audit send'")
        with _locked(self._send_lock):
            pending, end = self._unsent_from_marker()
            if not pending:
                return True, f"sent to {self.sender.destination}"
            why = self.sender.send(pending)
            if why is not None:
                return False, (f"not sent to {self.sender.destination}: {why}; {len(pending)} record(s) wait in "
                               f"{self.path} and go with the next record or 'forewarn audit send'")
            marker = {"seq": pending[-1]["seq"], "hash": pending[-1]["hash"], "offset": end}
            self._sent.write_text(json.dumps(marker) + "\n", encoding="utf-8")
            return True, f"sent to {self.sender.destination} ({len(pending)} record(s))"

    # ---- reading ---------------------------------------------------------------------------------------
    def lines(self) -> list[tuple[int, str]]:
        return read_lines(self.path) if self.path.exists() else []

    def records(self) -> list[dict[str, Any]]:
        """The well-formed records, in file order (``verify`` says whether they can be trusted)."""
        entries, _ = chain.parse(self.lines())
        return [e.fields for e in entries]

    def _marker(self) -> dict[str, Any]:
        try:
            marker = json.loads(self._sent.read_text(encoding="utf-8"))
            return {"seq": int(marker["seq"]), "offset": int(marker.get("offset", 0))}
        except (OSError, ValueError, KeyError, TypeError):
            return {"seq": 0, "offset": 0}

    def sent_up_to(self) -> int:
        return int(self._marker()["seq"])

    def unsent(self) -> list[dict[str, Any]]:
        return self._unsent_from_marker()[0]

    def _unsent_from_marker(self) -> tuple[list[dict[str, Any]], int]:
        """The records after the last one sent, and the file's end: read from where the last send ended
        (so an append does not re-read the whole trail); a file changed before that point is read whole."""
        marker = self._marker()
        if not self.path.exists():
            return [], 0
        with self.path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = marker["offset"] if 0 < marker["offset"] <= size else 0
            handle.seek(start)
            chunk = handle.read()
        chunk = chunk[: chunk.rfind(b"\n") + 1]  # a line being appended right now goes with the next send
        entries, _ = chain.parse(enumerate(chunk.decode("utf-8", errors="replace").splitlines(), start=1))
        records = [e.fields for e in entries if e.seq > marker["seq"]]
        if start and records and records[0]["seq"] != marker["seq"] + 1:
            entries, _ = chain.parse(self.lines())
            records = [e.fields for e in entries if e.seq > marker["seq"]]
        return records, start + len(chunk)

    def verify(self) -> list[chain.Problem]:
        if not self.path.exists():
            raise UserError(f"no audit trail at {self.path}: nothing was recorded there yet (or set "
                            "FOREWARN_AUDIT__FILE / pass --file)")
        return chain.verify(self.lines(), sent_up_to=self.sent_up_to())


def read_lines(path: Path) -> list[tuple[int, str]]:
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        return [(number, text.rstrip("\n")) for number, text in enumerate(handle, start=1)]
