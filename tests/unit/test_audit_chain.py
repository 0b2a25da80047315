"""The chain rules: an intact trail verifies; an edit, a removal and a swap are each found and named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from forewarn.audit import chain
from forewarn.audit.record import GENESIS, AuditRecord, hash_of

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _trail(n: int = 6) -> list[dict]:
    records: list[dict] = []
    for i in range(n):
        records.append(chain.next_record(records[-1] if records else None, trail="host:/t.jsonl", actor="alice",
                                         action="model.promoted", kind="model_version", object_id=f"m/{i + 1}",
                                         details={"f1": 0.5 + i / 100, "nan": float("nan")},
                                         at=T0 + timedelta(minutes=i)))
    return records


def _lines(records: list[dict]) -> list[tuple[int, str]]:
    return [(i, json.dumps(r, sort_keys=True)) for i, r in enumerate(records, start=1)]


def _kinds(problems: list[chain.Problem]) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in problems]


def test_records_chain_from_genesis_and_meet_the_contract() -> None:
    records = _trail()
    assert records[0]["prev_hash"] == GENESIS and records[0]["seq"] == 1
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev_hash"] == before["hash"] and after["seq"] == before["seq"] + 1
    assert all(hash_of(r) == r["hash"] and AuditRecord.model_validate(r) for r in records)
    assert records[0]["details"]["nan"] is None and records[0]["at"] == "2026-12-01T00:00:00.000000Z"
    assert chain.verify(_lines(records)) == []


def test_an_edit_is_named_by_its_seq_and_line() -> None:
    records = _trail()
    records[2] = {**records[2], "actor": "mallory"}
    problems = chain.verify(_lines(records))
    assert _kinds(problems) == [("edited", 3)]
    assert "seq 3 (line 3" in problems[0].message and "mallory" in problems[0].message
    assert "forewarn audit verify --kafka" in problems[0].message


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    records = _trail()
    forged = {**records[2], "details": {"f1": 0.99}}
    records[2] = {**forged, "hash": hash_of(forged)}
    problems = chain.verify(_lines(records))
    assert _kinds(problems) == [("relinked", 4)]
    assert "does not link to seq 3" in problems[0].message


@pytest.mark.parametrize("removed", [0, 3, 5])
def test_a_deletion_is_named(removed: int) -> None:
    records = _trail()
    del records[removed]
    problems = chain.verify(_lines(records), sent_up_to=6)
    assert _kinds(problems) == [("removed", removed + 1)]
    assert f"seq {removed + 1}" in problems[0].message and "removed" in problems[0].message


def test_a_cut_off_end_shows_against_what_kafka_confirmed() -> None:
    records = _trail()[:4]
    assert chain.verify(_lines(records)) == []
    problems = chain.verify(_lines(records), sent_up_to=6)
    assert _kinds(problems) == [("removed", 5)] and "up to seq 6" in problems[0].message


def test_a_swap_is_named_with_both_records() -> None:
    records = _trail()
    records[2], records[3] = records[3], records[2]
    problems = chain.verify(_lines(records))
    assert _kinds(problems) == [("reordered", 3)]
    assert "seq 3 (line 4" in problems[0].message and "seq 4 (line 3" in problems[0].message


def test_malformed_duplicate_and_foreign_lines() -> None:
    records = _trail(3)
    other = chain.next_record(None, trail="elsewhere", actor="bob", action="x", kind="k", object_id="1", details={},
                              at=T0)
    lines = [*_lines(records), (4, "{not json"), (5, json.dumps(records[1])), (6, json.dumps(other))]
    kinds = _kinds(chain.verify(lines))
    assert ("malformed", None) in kinds and ("duplicate", 2) in kinds and ("foreign", 1) in kinds


def test_comparison_with_the_kafka_copy() -> None:
    records = _trail()
    copies = [dict(r) for r in records]
    assert chain.compare_with_copy(_lines(records), copies) == []
    # Renumbered after a removal, every hash recomputed: the file alone looks intact, the copy does not.
    forged: list[dict] = []
    for r in records[:2] + records[3:]:
        body = {**r, "seq": len(forged) + 1, "prev_hash": forged[-1]["hash"] if forged else GENESIS}
        forged.append({**body, "hash": hash_of(body)})
    assert chain.verify(_lines(forged)) == []
    kinds = _kinds(chain.compare_with_copy(_lines(forged), copies))
    assert ("differs", 3) in kinds and ("removed", 6) in kinds
