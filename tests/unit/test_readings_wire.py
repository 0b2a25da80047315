from __future__ import annotations

import orjson
import pytest

from forewarn.readings_wire import decode_value, envelopes, murmur2, partition_for


@pytest.mark.parametrize(
    # Reference values from the Java client (org.apache.kafka.common.utils.Utils.murmur2), as signed ints.
    ("text", "java"),
    [("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536),
     ("a-little-bit-longer-string", -1486304829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
     ("abc", 479470107)],
)
def test_murmur2_matches_the_java_client(text: str, java: int) -> None:
    assert murmur2(text.encode()) == java & 0xFFFFFFFF


def test_envelopes_group_by_partition_and_keep_order() -> None:
    readings = [{"machine_id": f"m{i % 7}", "ts": i} for i in range(100)]
    out = envelopes(readings, 4)
    seen = []
    for partition, blob, positions in out:
        decoded = decode_value(blob)
        assert all(partition_for(r["machine_id"], 4) == partition for r in decoded)
        assert [r["ts"] for r in decoded] == sorted(r["ts"] for r in decoded)
        assert decoded == [readings[p] for p in positions]
        seen += positions
    assert sorted(seen) == list(range(100))


def test_envelopes_respect_the_size_limit() -> None:
    readings = [{"machine_id": "m", "ts": i, "values": {"x": 1.0}} for i in range(1000)]
    out = envelopes(readings, 1, max_bytes=2000)
    assert len(out) > 1 and all(len(blob) <= 2000 for _, blob, _ in out)
    assert sum(len(decode_value(b)) for _, b, _ in out) == 1000


def test_a_single_reading_is_a_list_of_one() -> None:
    assert decode_value(orjson.dumps({"machine_id": "m"})) == [{"machine_id": "m"}]
