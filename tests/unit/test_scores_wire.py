"""risk.scores envelopes: bounded size, order kept, single scores still read, positions ordered."""

from __future__ import annotations

import orjson
import pytest

from forewarn.scores_wire import decode_value, envelopes, position


def test_envelopes_keep_order_and_respect_the_size_limit() -> None:
    payloads = [orjson.dumps({"machine_id": f"m{i}", "p_failure": i / 100}) for i in range(100)]
    packed = envelopes(payloads, max_bytes=300)
    assert len(packed) > 1 and all(len(e) <= 300 for e in packed)
    assert [doc for e in packed for doc in decode_value(e)] == [orjson.loads(p) for p in payloads]


def test_a_score_larger_than_the_limit_travels_alone_and_nothing_is_empty() -> None:
    big, small = orjson.dumps({"x": "y" * 500}), b"{}"
    assert envelopes([small, big, small], max_bytes=100) == [b"[{}]", b"[" + big + b"]", b"[{}]"]
    assert envelopes([]) == []


def test_a_single_score_message_is_still_one_score() -> None:
    assert decode_value(b'{"machine_id":"m1"}') == [{"machine_id": "m1"}]
    with pytest.raises(orjson.JSONDecodeError):
        decode_value(b"not json")


def test_positions_order_by_offset_then_index() -> None:
    assert position(7, 0) < position(7, 1) < position(7, 5000) < position(8, 0)
