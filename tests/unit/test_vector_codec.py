from __future__ import annotations

import numpy as np
import pytest

from forewarn.vector_codec import VectorBlock, block_from_dicts, decode, encode, split


def test_round_trip_keeps_every_value_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(7, 4)) * 1e6
    matrix[2, 1] = np.nan
    block = VectorBlock("pump", "v1", ["a", "b", "c", "d"], [f"m{i}" for i in range(7)],
                        np.arange(7, dtype=np.int64) * 1000, matrix, sites=["s"] * 7,
                        ingested_at=np.arange(7, dtype=np.int64))
    back = decode(encode(block))
    assert (back.machine_type, back.feature_set_version, back.names) == ("pump", "v1", ["a", "b", "c", "d"])
    assert back.machine_ids == block.machine_ids and back.sites == block.sites
    np.testing.assert_array_equal(back.ts, block.ts)
    np.testing.assert_array_equal(back.ingested_at, block.ingested_at)
    assert np.array_equal(back.matrix, matrix, equal_nan=True)
    assert back.row_dict(2)["features"]["b"] is None


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        encode(VectorBlock("pump", "v1", ["a"], ["m"], np.zeros(1, dtype=np.int64), np.zeros((1, 2))))


def test_foreign_payload_is_refused() -> None:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    table = pa.table({"x": [1]})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(ValueError, match="not a forewarn feature block"):
        decode(sink.getvalue().to_pybytes())


def test_dicts_group_into_blocks_by_type_and_names() -> None:
    vectors = [
        {"machine_id": "a", "machine_type": "pump", "ts": 1, "feature_set_version": "v", "features": {"x": 1.0}},
        {"machine_id": "b", "machine_type": "fan", "ts": 2, "feature_set_version": "v", "features": {"y": None}},
        {"machine_id": "c", "machine_type": "pump", "ts": 3, "feature_set_version": "v", "features": {"x": 2.0}},
    ]
    blocks = {b.machine_type: b for b in block_from_dicts(vectors)}
    assert blocks["pump"].machine_ids == ["a", "c"] and blocks["pump"].matrix[:, 0].tolist() == [1.0, 2.0]
    assert np.isnan(blocks["fan"].matrix[0, 0])


def test_split_keeps_order_and_respects_the_size_limit() -> None:
    names = [f"f{i}" for i in range(100)]
    block = VectorBlock("pump", "v1", names, [f"m{i}" for i in range(1000)], np.arange(1000, dtype=np.int64),
                        np.random.default_rng(0).normal(size=(1000, 100)), sites=["s"] * 1000)
    parts = split(block, 200_000)
    assert len(parts) > 1 and all(len(encode(p)) < 250_000 for p in parts)
    assert sum((p.machine_ids for p in parts), []) == block.machine_ids
    assert np.array_equal(np.vstack([p.matrix for p in parts]), block.matrix)
    assert split(block, 10**9) == [block]
