"""The chain rules, pure: the next record after the last one, and what is wrong with a sequence of lines.

Every problem names the record (its ``seq`` and its line) and says what to do next. What the local file
alone cannot show (the last records cut off, or a removal with every later record renumbered and
re-hashed) shows against the copy on Kafka (:func:`compare_with_copy`) or the count already sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from forewarn.audit.record import GENESIS, AuditRecord, hash_of, iso_utc, json_safe

EDITED, REMOVED, REORDERED, RELINKED, DUPLICATE, MALFORMED, FOREIGN, DIFFERS = (
    "edited", "removed", "reordered", "relinked", "duplicate", "malformed", "foreign", "differs")

_CHECK_COPY: Final = ("compare the file with the copy on the Kafka audit topic ('forewarn audit verify --kafka') "
                      "and find out who could write to it")


@dataclass(frozen=True)
class Problem:
    kind: str
    seq: int | None  # the record it names (None: a line that is not a record)
    line: int | None  # 1-based line in the file (None: a record only on Kafka)
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class Entry:
    """One line of the file that is a record."""

    line: int
    fields: dict[str, Any]
    record: AuditRecord

    @property
    def seq(self) -> int:
        return self.record.seq

    def describe(self) -> str:
        r = self.record
        return (f"seq {r.seq} (line {self.line}: {r.action} {r.object.kind} {r.object.id!r} by {r.actor} at "
                f"{iso_utc(r.at)})")


def next_record(last: Mapping[str, Any] | None, *, trail: str, actor: str, action: str, kind: str, object_id: str,
                details: Mapping[str, Any] | None, at: datetime) -> dict[str, Any]:
    """The record that follows ``last`` (None: the first of the trail), as stored, hash included."""
    fields: dict[str, Any] = {
        "seq": 1 if last is None else int(last["seq"]) + 1,
        "trail": str(last["trail"]) if last is not None else trail,
        "actor": actor, "action": action, "object": {"kind": kind, "id": object_id},
        "details": json_safe(dict(details or {})), "at": iso_utc(at),
        "prev_hash": GENESIS if last is None else str(last["hash"]),
    }
    fields["hash"] = hash_of(fields)
    AuditRecord.model_validate(fields)  # the contract, before anything is written
    return fields


def parse(lines: Iterable[tuple[int, str]]) -> tuple[list[Entry], list[Problem]]:
    entries: list[Entry] = []
    problems: list[Problem] = []
    for number, text in lines:
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
            record = AuditRecord.model_validate(fields)
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            why = "not JSON" if isinstance(exc, json.JSONDecodeError) else "not an audit record"
            problems.append(Problem(MALFORMED, None, number, (
                f"line {number} is {why} ({str(exc).splitlines()[0][:160]}): it was edited, or torn by a crash "
                f"mid-write; {_CHECK_COPY}")))
            continue
        entries.append(Entry(number, fields, record))
    return entries, problems


def verify(lines: Iterable[tuple[int, str]], *, sent_up_to: int = 0) -> list[Problem]:
    """Everything wrong with the trail in ``lines``; empty when it is intact.

    ``sent_up_to``: the highest seq already confirmed on Kafka, so a cut-off end shows too."""
    entries, problems = parse(lines)
    if not entries:
        return problems
    trail = entries[0].record.trail
    for e in entries:
        if e.record.trail != trail:
            problems.append(Problem(FOREIGN, e.seq, e.line, (
                f"record {e.describe()} belongs to trail {e.record.trail!r}, not {trail!r}: a line of another trail "
                f"was pasted in; {_CHECK_COPY}")))
        if hash_of(e.fields) != e.record.hash:
            problems.append(Problem(EDITED, e.seq, e.line, (
                f"record {e.describe()} was edited: its content no longer matches its hash. Treat what it says as "
                f"unproven; {_CHECK_COPY}")))
    highest: Entry | None = None
    for e in entries:
        if highest is not None and e.seq <= highest.seq:
            problems.append(Problem(REORDERED, e.seq, e.line, (
                f"record {e.describe()} comes after {highest.describe()}: records were swapped or reordered. "
                f"Check both against Kafka before putting the lines back in seq order")))
        if highest is None or e.seq > highest.seq:
            highest = e
    by_seq: dict[int, Entry] = {}
    for e in sorted(entries, key=lambda x: (x.seq, x.line)):
        if e.seq in by_seq:
            problems.append(Problem(DUPLICATE, e.seq, e.line, (
                f"seq {e.seq} appears twice (lines {by_seq[e.seq].line} and {e.line}): two writers forked the chain "
                f"(the file lock was bypassed, e.g. a copy on another disk) or a record was copied; {_CHECK_COPY}")))
            continue
        by_seq[e.seq] = e
    ordered = sorted(by_seq.values(), key=lambda x: x.seq)
    first = ordered[0]
    if first.seq != 1:
        problems.append(Problem(REMOVED, 1, first.line, (
            f"record(s) seq 1..{first.seq - 1} before {first.describe()} are missing: they were removed from the "
            f"start. Their copies are on Kafka ('forewarn audit show --kafka')")))
    elif first.record.prev_hash != GENESIS:
        problems.append(Problem(RELINKED, first.seq, first.line, (
            f"record {first.describe()} is the first but does not start from the genesis hash: it was replaced; "
            f"{_CHECK_COPY}")))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.seq != before.seq + 1:
            missing = (f"seq {before.seq + 1}" if after.seq == before.seq + 2
                       else f"seq {before.seq + 1}..{after.seq - 1}")
            problems.append(Problem(REMOVED, before.seq + 1, after.line, (
                f"record(s) {missing} between {before.describe()} and {after.describe()} are missing: they were "
                f"removed. Their copies are on Kafka ('forewarn audit show --kafka')")))
        elif after.record.prev_hash != before.record.hash:
            problems.append(Problem(RELINKED, after.seq, after.line, (
                f"record {after.describe()} does not link to {before.describe()} (its prev_hash is not that "
                f"record's hash): one of them was rewritten with a recomputed hash, or replaced; {_CHECK_COPY}")))
    last = ordered[-1]
    if sent_up_to > last.seq:
        problems.append(Problem(REMOVED, last.seq + 1, None, (
            f"the trail ends at {last.describe()}, but records up to seq {sent_up_to} were already sent to Kafka: "
            f"the last records were removed. Their copies are on Kafka ('forewarn audit show --kafka')")))
    return problems


def compare_with_copy(lines: Iterable[tuple[int, str]], copies: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """What differs between the local trail and its copy (the records of the same trail on Kafka)."""
    entries, _ = parse(lines)
    if not entries:
        return []
    trail = entries[0].record.trail
    local = {e.seq: e for e in entries}
    remote: dict[int, Mapping[str, Any]] = {}
    problems: list[Problem] = []
    for copy in copies:
        if copy.get("trail") != trail or not isinstance(copy.get("seq"), int):
            continue
        seq = int(copy["seq"])
        if seq in remote and remote[seq].get("hash") != copy.get("hash"):
            problems.append(Problem(DUPLICATE, seq, None, (
                f"Kafka holds two different records with seq {seq} of trail {trail!r}: the chain forked (two "
                f"writers on copies of the file)")))
        remote.setdefault(seq, copy)
    top = max(local)
    for seq in sorted(remote):
        copy = remote[seq]
        mine = local.get(seq)
        if mine is None:
            where = "after the end of the file" if seq > top else "from the file"
            problems.append(Problem(REMOVED, seq, None, (
                f"record seq {seq} ({copy.get('action')} {dict(copy.get('object') or {}).get('id')!r} by "
                f"{copy.get('actor')} at {copy.get('at')}) is on Kafka but missing {where}: it was removed "
                f"locally; the Kafka copy is the original")))
        elif mine.record.hash != copy.get("hash") or hash_of(mine.fields) != copy.get("hash"):
            problems.append(Problem(DIFFERS, seq, mine.line, (
                f"record {mine.describe()} differs from its copy on Kafka: the file was changed after it was sent; "
                f"the Kafka copy is the original")))
    return problems
