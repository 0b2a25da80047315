"""Kafka records -> lake rows: one row per JSON object (envelopes exploded), exact values, tolerant fields,
and the features of exploded envelopes equal what the service computes from the envelopes themselves."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from forewarn.assets import load_asset_config
from forewarn.etl import lake
from forewarn.etl.rows import RowsContext, build_rows
from forewarn.etl.spec import BuildSpec
from forewarn.features import feature_names
from forewarn.readings_wire import envelopes
from forewarn.services.features.processor import FeatureProcessor, SourceRecord

BASE = 1_767_225_600_000
CONFIG = load_asset_config("plant")


def records(values: list[bytes | None]) -> pd.DataFrame:
    return pd.DataFrame({"kafka_topic": "t", "kafka_partition": 1, "kafka_offset": range(10, 10 + len(values)),
                         "kafka_timestamp": pd.Timestamp("2026-03-04 05:06:07"), "kafka_key": "k", "value": values})


def test_envelopes_become_one_row_per_reading_and_values_stay_exact() -> None:
    single = b'{"machine_id": "a", "machine_type": "pump", "ts": 1767225600000, "values": {"temperature": 0.1}}'
    members = [{"machine_id": "b", "machine_type": "pump", "ts": BASE + i, "values": {"temperature": 0.1 + i,
                                                                                      "vibration": "x"}}
               for i in range(3)]
    rows = lake.explode(records([single, orjson.dumps(members), b"oops", None, b"[]"]), lake.dataset(lake.READINGS))
    assert rows[["kafka_offset", "kafka_index"]].values.tolist() == [[10, 0], [11, 0], [11, 1], [11, 2], [12, 0],
                                                                     [13, 0]]
    assert rows["value"].iloc[0] == single  # the record's own bytes
    assert [orjson.loads(v) for v in rows["value"].iloc[1:4]] == members
    assert rows["machine_id"].tolist()[:4] == ["a", "b", "b", "b"]
    assert rows["values"].iloc[2] == {"temperature": 1.1}  # only numbers
    assert rows["value"].iloc[4] == b"oops" and rows["value"].iloc[5] is None
    assert rows["date"].tolist() == ["2026-01-01"] * 4 + ["2026-03-04"] * 2  # no event time: Kafka's


def test_fields_are_tolerant_of_types_and_nesting() -> None:
    event = {"event_id": "e", "kind": "false_alarm", "machine_id": 5, "alert_window": {"start_ts": 1, "end_ts": True},
             "received_at": "yesterday"}
    rows = lake.explode(records([orjson.dumps(event)]), lake.dataset(lake.FEEDBACK))
    row = rows.iloc[0]
    assert row["kind"] == "false_alarm" and row["window_start_ts"] == 1
    assert pd.isna(row["window_end_ts"]) and row["machine_id"] is None and pd.isna(row["received_at"])
    assert lake.dataset(lake.FEEDBACK).ddl.endswith("received_at` BIGINT, date STRING")


def test_exploded_envelopes_give_the_features_the_service_computes() -> None:
    rng = np.random.default_rng(3)
    readings = []
    for step in range(40):
        for m in range(10):
            machine_type = ("pump", "compressor")[m % 2]
            sensors = CONFIG.machine_type(machine_type).sensor_names
            readings.append({"machine_id": f"m{m}", "machine_type": machine_type,
                             "ts": BASE + step * 1000 - (2500 if rng.random() < 0.05 else 0),
                             "values": {s: float(rng.normal(5, 1)) for s in sensors if rng.random() > 0.1}})
    messages = []  # (partition, value): envelopes of 25 readings, as the simulator and ingest send them
    for start in range(0, len(readings), 25):
        messages += [(p, value) for p, value, _ in envelopes(readings[start:start + 25], partitions=3)]
    offsets = [0, 0, 0]
    kafka = []
    for partition, value in messages:
        kafka.append({"kafka_topic": "t", "kafka_partition": partition, "kafka_offset": offsets[partition],
                      "kafka_timestamp": pd.Timestamp("2026-01-01"), "kafka_key": None, "value": value})
        offsets[partition] += 1
    processor = FeatureProcessor(CONFIG)
    output = processor.process(SourceRecord(r["kafka_partition"], r["kafka_offset"], r["value"]) for r in kafka)
    online = {}
    for blocks in output.blocks.values():
        for block in blocks:
            for i, key in enumerate(zip(block.machine_ids, block.ts.tolist(), strict=True)):
                online[key] = block.matrix[i]

    rows = lake.explode(pd.DataFrame(kafka).sample(frac=1.0, random_state=2), lake.dataset(lake.READINGS))
    offline = build_rows(rows, None, RowsContext(CONFIG, BuildSpec(), BASE + 40_000))
    accepted = offline[offline["status"] == "accepted"]
    assert len(accepted) == len(online) == output.accepted > 300
    for machine_type, group in accepted.groupby("machine_type"):
        names = feature_names(CONFIG.machine_type(machine_type))
        for key, row in zip(zip(group["machine_id"], group["ts"].astype(int), strict=True), group[names].to_numpy(),
                            strict=True):
            assert np.array_equal(row, online[key], equal_nan=True), key
