"""The features service's core without Kafka: replays are skipped, snapshots restore exactly, emission by
interval depends on state only."""

from __future__ import annotations

import numpy as np
import orjson

from forewarn.assets import load_asset_config
from forewarn.services.features.processor import FeatureProcessor, SourceRecord

BASE = 1_767_225_600_000


def records(n: int, partition: int = 0, start_offset: int = 0, machines: int = 3, start_step: int = 0) -> list:
    out = []
    for i in range(n):
        step = start_step + i // machines
        reading = {"machine_id": f"m{i % machines}", "machine_type": "pump", "ts": BASE + step * 1000,
                   "values": {"temperature": 40.0 + step * 0.1, "vibration": 2.0 + (i % 5) * 0.01}}
        out.append(SourceRecord(partition, start_offset + i, orjson.dumps(reading)))
    return out


def rows(output) -> dict:
    result = {}
    for blocks in output.blocks.values():
        for block in blocks:
            for i, machine_id in enumerate(block.machine_ids):
                result[(machine_id, int(block.ts[i]))] = block.matrix[i]
    return result


def test_replayed_offsets_are_skipped_not_double_counted() -> None:
    processor = FeatureProcessor(load_asset_config("plant"))
    batch = records(30)
    first = processor.process(batch)
    again = processor.process(batch)
    assert first.accepted == 30 and again.accepted == 0 and again.skipped_replayed == 30


def test_snapshot_restore_and_replay_equal_an_uninterrupted_run() -> None:
    config = load_asset_config("plant")
    stream = records(90)
    uninterrupted = FeatureProcessor(config)
    expected = rows(uninterrupted.process(stream))

    crashed = FeatureProcessor(config)
    crashed.process(stream[:40])
    applied, states = crashed.snapshot(0)
    crashed.process(stream[40:60])  # processed after the snapshot, then the process dies

    restored = FeatureProcessor(config)
    restored.restore(0, applied, states)
    restored.process(stream[40:60], emit=False)  # replay between snapshot and committed offset
    after = rows(restored.process(stream[55:]))  # faust redelivers from an older commit: skipped below 60
    for key, row in after.items():
        assert np.array_equal(row, expected[key], equal_nan=True), key
    assert set(after) == {k for k in expected if k[1] >= BASE + 20 * 1000}


def test_bad_messages_are_rejected_with_a_reason() -> None:
    processor = FeatureProcessor(load_asset_config("plant"))
    bad = [SourceRecord(0, 0, b"{nope"), SourceRecord(0, 1, orjson.dumps({"machine_type": "boiler"})),
           SourceRecord(0, 2, orjson.dumps({"machine_id": "x", "machine_type": "pump", "ts": "yesterday",
                                            "values": {}}))]
    output = processor.process(bad)
    assert [r.reason.split(":")[0] for r in output.rejected] == [
        "not JSON", "unknown machine_type 'boiler'", "ts must be epoch milliseconds (integer)"]


def test_emit_interval_publishes_one_vector_per_interval_and_is_replay_stable() -> None:
    processor = FeatureProcessor(load_asset_config("plant"), emit_interval_ms=5000)
    output = processor.process(records(60, machines=1))
    emitted_ts = sorted(ts for _, ts in rows(output))
    assert emitted_ts == [BASE + s * 1000 for s in range(0, 60, 5)]


def test_forget_drops_a_partitions_machines() -> None:
    processor = FeatureProcessor(load_asset_config("plant"))
    processor.process(records(6, partition=1))
    processor.forget(1)
    assert processor.snapshot(1) == (-1, {})
    assert processor.process(records(6, partition=1)).accepted == 6


def test_poison_readings_are_rejected_not_crashing() -> None:
    processor = FeatureProcessor(load_asset_config("plant"))
    poison = [
        {"machine_id": "x", "machine_type": "pump", "ts": 2**60, "values": {}},
        {"machine_id": "x", "machine_type": ["pump"], "ts": 1, "values": {}},
    ]
    output = processor.process([SourceRecord(0, i, orjson.dumps(r)) for i, r in enumerate(poison)])
    assert [r.reason.split(" ")[0] for r in output.rejected] == ["ts", "unknown"] and output.accepted == 0


def test_only_json_numbers_count_whatever_the_rest_of_the_batch() -> None:
    processor = FeatureProcessor(load_asset_config("plant"))
    odd = {"machine_id": "a", "machine_type": "pump", "ts": BASE,
           "values": {"temperature": True, "vibration": "12.5", "pressure": 3}}
    alone = processor._values([odd], ("temperature", "vibration", "pressure"))
    sensors = ("temperature", "vibration", "pressure")
    with_text = processor._values([odd, {**odd, "values": {"temperature": "x"}}], sensors)
    assert np.isnan(alone[0, :2]).all() and alone[0, 2] == 3.0
    assert np.array_equal(alone[0], with_text[0], equal_nan=True)


def test_a_replay_leaves_the_newest_vectors_for_the_online_store() -> None:
    # The online store is written every online_flush_s, so a crash can lose a write whose readings were
    # already committed; the restart's replay (emit=False) must hand those vectors back.
    config = load_asset_config("plant")
    stream = records(60)
    live = FeatureProcessor(config)
    live.process(stream)
    expected = {m: (latest.ts, latest.row) for m, latest in live.latest.items()}

    replayed = FeatureProcessor(config)
    out = replayed.process(stream, emit=False)
    assert out.blocks == {}
    got = {m: (latest.ts, latest.row) for m, latest in replayed.latest.items()}
    assert set(got) == set(expected) == {"m0", "m1", "m2"}
    for machine_id, (ts, row) in expected.items():
        assert got[machine_id][0] == ts and np.array_equal(got[machine_id][1], row, equal_nan=True)
