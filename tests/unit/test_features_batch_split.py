"""The features worker processes a batch in parts bounded in bytes."""

from __future__ import annotations


def test_a_batch_splits_into_consecutive_parts_bounded_in_bytes() -> None:
    from forewarn.services.features.processor import SourceRecord
    from forewarn.services.features.worker import split_by_bytes

    records = [SourceRecord(0, offset, b"x" * size) for offset, size in enumerate([3, 3, 3, 9, 1, 1])]
    parts = split_by_bytes(records, 6)
    assert [[r.offset for r in part] for part in parts] == [[0, 1], [2], [3], [4, 5]]
    assert split_by_bytes([], 6) == []
