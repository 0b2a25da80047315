"""The offline training rows decode and compute exactly what the online features service does, without
Spark: the same Kafka records through the service's FeatureProcessor and through build_rows."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from forewarn.assets import load_asset_config
from forewarn.etl.decode import decode_records
from forewarn.etl.rows import RowsContext, arrival_order, build_rows, output_columns
from forewarn.etl.spec import BuildSpec, Horizon
from forewarn.features import feature_names
from forewarn.services.features.processor import FeatureProcessor, SourceRecord

CONFIG = load_asset_config("plant")
BASE = 1_767_225_600_000


def odd_records() -> list[bytes | None]:
    """Readings the service must cope with: odd values, odd fields, malformed records."""
    good = {"machine_id": "p1", "machine_type": "pump", "ts": BASE, "values": {"temperature": 50.0}}
    return [
        orjson.dumps(good),
        orjson.dumps({**good, "ts": BASE + 1000, "values": {"temperature": "hot", "vibration": {"a": 1},
                                                            "pressure": 3, "oil_temperature": 9.0, "x": 1}}),
        orjson.dumps({**good, "ts": BASE + 2000, "values": {"temperature": None, "current": 1e308}}),
        orjson.dumps({**good, "ts": BASE + 3000, "site": "north", "ingested_at": 5, "values": {}}),
        b"not json",
        None,
        b"[1, 2]",
        orjson.dumps({**good, "machine_type": "turbine"}),
        orjson.dumps({**good, "machine_id": 7}),
        orjson.dumps({**good, "machine_id": ""}),
        orjson.dumps({**good, "ts": "2026-01-01T00:00:00Z"}),
        orjson.dumps({**good, "ts": 1.5e12}),
        orjson.dumps({**good, "ts": True}),
        orjson.dumps({**good, "values": [1, 2]}),
        orjson.dumps({**good, "machine_type": "compressor", "ts": BASE + 500,
                      "values": {"oil_temperature": 70.5, "temperature": -3}}),
    ]


def test_decoding_matches_the_features_service_record_by_record() -> None:
    records = odd_records()
    processor = FeatureProcessor(CONFIG)
    output = processor.process([SourceRecord(0, i, r) for i, r in enumerate(records)])
    online_reasons = {rej.record.offset: rej.reason for rej in output.rejected}

    decoded = decode_records(records, CONFIG)
    offline_reasons = {i: r for i, r in enumerate(decoded["reason"]) if r is not None}
    assert offline_reasons == online_reasons
    assert output.accepted == int(decoded["reason"].isna().sum()) == 5


def test_both_sides_give_the_first_fault_in_the_checks_order() -> None:
    good = {"machine_id": "p1", "machine_type": "pump", "ts": BASE, "values": {"temperature": 50.0}}
    records = [orjson.dumps({**good, "ts": 2**60, "values": [1, 2]}), orjson.dumps({**good, "ts": -(2**53)}),
               orjson.dumps({**good, "machine_id": None, "ts": "x"}), orjson.dumps({**good, "ts": -(2**53) + 1})]
    output = FeatureProcessor(CONFIG).process([SourceRecord(0, i, r) for i, r in enumerate(records)])
    online_reasons = [rej.reason for rej in output.rejected]
    offline_reasons = [r for r in decode_records(records, CONFIG)["reason"] if r is not None]
    assert online_reasons == offline_reasons == [
        "ts out of range (must be within +-2**53 epoch milliseconds)",
        "ts out of range (must be within +-2**53 epoch milliseconds)",
        "machine_id missing or not a string"]


def test_only_finite_json_numbers_are_values() -> None:
    values = {"temperature": True, "vibration": "12.5", "pressure": 3, "current": None, "rotational_speed": 1e308}
    decoded = decode_records([orjson.dumps({"machine_id": "p", "machine_type": "pump", "ts": BASE,
                                            "values": values})], CONFIG)
    row = decoded.iloc[0]
    assert row["value__pressure"] == 3.0 and row["value__rotational_speed"] == 1e308
    assert row[["value__temperature", "value__vibration", "value__current"]].isna().all()


def test_a_timestamp_the_engine_cannot_hold_is_rejected_not_fatal() -> None:
    decoded = decode_records([orjson.dumps({"machine_id": "p", "machine_type": "pump", "ts": 2**60,
                                            "values": {}})], CONFIG)
    assert decoded["reason"].tolist() == ["ts out of range (must be within +-2**53 epoch milliseconds)"]


def random_records(seed: int, machines: int = 8, steps: int = 60) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for step in range(steps):
        for m in range(machines):
            machine_type = ("pump", "compressor")[m % 2]
            sensors = CONFIG.machine_type(machine_type).sensor_names
            ts = BASE + step * 1000 + int(rng.integers(0, 300))
            if step > 3 and rng.random() < 0.05:
                ts -= 2500  # out of order
            values = {s: round(float(rng.normal(50, 5)), 3) for s in sensors if rng.random() > 0.1}
            out.append(orjson.dumps({"machine_id": f"m{m}", "machine_type": machine_type, "ts": ts, "values": values}))
            if rng.random() < 0.03:
                out.append(out[-1])  # the same reading sent twice
    return out


def lake_frame(records: list[bytes | None], partitions: int = 3) -> pd.DataFrame:
    """Records spread over partitions by machine (as keyed Kafka does), then shuffled like a lake scan."""
    rows, offsets = [], [0] * partitions
    for raw in records:
        machine = orjson.loads(raw)["machine_id"] if raw and raw.startswith(b"{") else "?"
        partition = sum(machine.encode()) % partitions if isinstance(machine, str) else 0
        rows.append({"kafka_topic": "t", "kafka_partition": partition, "kafka_offset": offsets[partition],
                     "value": raw})
        offsets[partition] += 1
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def online_vectors(lake: pd.DataFrame, batch: int = 37) -> dict[tuple[str, int], np.ndarray]:
    """What the service emits for these records: partition by partition in offset order, in batches."""
    processor = FeatureProcessor(CONFIG)
    ordered = arrival_order(lake)
    records = [SourceRecord(int(r.kafka_partition), int(r.kafka_offset), r.value) for r in ordered.itertuples()]
    vectors = {}
    for start in range(0, len(records), batch):
        out = processor.process(records[start:start + batch])
        for blocks in out.blocks.values():
            for block in blocks:
                for i, (machine, ts) in enumerate(zip(block.machine_ids, block.ts.tolist(), strict=True)):
                    vectors[(machine, int(ts))] = block.matrix[i]
    return vectors


def test_offline_rows_have_the_online_features_for_every_accepted_reading() -> None:
    lake = lake_frame(random_records(seed=4) + odd_records())
    expected = online_vectors(lake)
    rows = build_rows(lake, None, RowsContext(CONFIG, BuildSpec(), data_end_ts=BASE + 10**6))
    accepted = rows[rows["status"] == "accepted"]
    assert len(accepted) == len(expected) > 400
    compared = 0
    for machine_type, group in accepted.groupby("machine_type"):
        names = feature_names(CONFIG.machine_type(machine_type))
        for key, row in zip(zip(group["machine_id"], group["ts"].astype(int), strict=True),
                            group[names].to_numpy(), strict=True):
            assert np.array_equal(row, expected[key], equal_nan=True), key
            compared += 1
    assert compared == len(expected)
    statuses = rows["status"].value_counts().to_dict()
    assert statuses["rejected"] == 10 and statuses["late_or_duplicate"] > 0


def test_rows_have_every_declared_column_and_keep_raw_values_beside_cleaned_ones() -> None:
    records = [orjson.dumps({"machine_id": "p1", "machine_type": "pump", "ts": BASE + i * 1000,
                             "values": {"temperature": 500.0 if i == 2 else 20.0}}) for i in range(4)]
    lake = pd.DataFrame({"kafka_topic": "t", "kafka_partition": 0, "kafka_offset": range(4), "value": records})
    rows = build_rows(lake, None, RowsContext(CONFIG, BuildSpec(horizon=Horizon.parse("1h")), BASE + 3000))
    assert list(rows.columns) == [name for name, _ in output_columns(CONFIG)]
    third = rows[rows["ts"] == BASE + 2000].iloc[0]
    assert third["value__temperature"] == 500.0  # what the feature module saw, as online
    assert third["clean__temperature"] == 20.0  # out of range (max 200) -> null -> imputed
    assert third["out_of_range"] == 1 and third["imputed"] == 1
    assert rows["arrival"].tolist() == [0, 1, 2, 3]


def test_an_exact_duplicate_beyond_the_engine_memory_feeds_features_but_leaves_the_training_rows() -> None:
    def reading(ts: int, value: float) -> bytes:
        return orjson.dumps({"machine_id": "p1", "machine_type": "pump", "ts": ts, "values": {"temperature": value}})

    # 40 readings after the first push its timestamp out of the engine's duplicate memory (32), while it
    # is still within the allowed lateness (30 s): online, the resent reading is accepted again.
    records = [reading(BASE, 1.0), *[reading(BASE + 500 * (i + 1), 2.0) for i in range(40)], reading(BASE, 1.0)]
    lake = pd.DataFrame({"kafka_topic": "t", "kafka_partition": 0, "kafka_offset": range(len(records)),
                         "value": records})
    assert len(online_vectors(lake)) == 41  # distinct (machine, ts); the service emitted 42 vectors
    rows = build_rows(lake, None, RowsContext(CONFIG, BuildSpec(), BASE + 20_000))
    assert rows["status"].tolist() == ["accepted"] * 41 + ["exact_duplicate"]
    assert not np.isnan(rows["temperature__1m__mean"].iloc[-1])  # features computed as online


def test_feature_resets_at_maintenance_are_applied_only_when_asked() -> None:
    from forewarn.etl.labels import events_by_machine

    records = [orjson.dumps({"machine_id": "p1", "machine_type": "pump", "ts": BASE + i * 1000,
                             "values": {"temperature": float(i)}}) for i in range(10)]
    lake = pd.DataFrame({"kafka_topic": "t", "kafka_partition": 0, "kafka_offset": range(10), "value": records})
    events = events_by_machine(pd.DataFrame({"machine_id": ["p1"], "kind": ["maintenance"], "ts": [BASE + 5500],
                                             "end_ts": [None]}))
    plain = build_rows(lake, events, RowsContext(CONFIG, BuildSpec(), BASE + 9000))
    assert plain["readings_since_reset"].tolist() == list(range(1, 11))  # as online, which has no resets
    reset = build_rows(lake, events, RowsContext(CONFIG, BuildSpec(feature_resets=True), BASE + 9000))
    assert reset["reset_before"].tolist() == [False] * 6 + [True] + [False] * 3
    assert reset["readings_since_reset"].tolist() == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4]
