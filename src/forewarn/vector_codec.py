"""Wire format of ``features.vectors``: columnar blocks of feature vectors (Arrow IPC).

Why blocks and not one JSON object per vector: a vector has one to two hundred features, and at tens of
thousands of readings a second per core, encoding and parsing that many JSON objects costs more than
computing the features or scoring them (measured: ~40k dict decodes/s, against ~190k rows/s for a
100-tree LightGBM predict). A block decodes into a ready numpy matrix without copying.

A block holds vectors of one machine type and one feature-set version:

    schema metadata  forewarn.block=1, feature_set_version, machine_type, names (JSON list)
    columns          machine_id: string, ts: int64 (event time, ms), site: string (nullable),
                     ingested_at: int64 (ms, nullable; carried from the reading for latency),
                     features: fixed_size_list<float64>[len(names)] (NaN = missing)

Per-machine order is preserved by producing each block to the partition its readings came from
(``features.vectors`` has as many partitions as ``sensor.readings``), so Kafka keys are not needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa

CONTENT_TYPE = "application/vnd.apache.arrow.stream"
BLOCK_FORMAT = b"1"


@dataclass
class VectorBlock:
    machine_type: str
    feature_set_version: str
    names: list[str]
    machine_ids: list[str]
    ts: np.ndarray  # int64, event time ms
    matrix: np.ndarray  # float64 [rows, len(names)]
    sites: list[str | None] | None = None
    ingested_at: np.ndarray | None = None  # int64 ms

    def __len__(self) -> int:
        return len(self.machine_ids)

    def row_dict(self, i: int) -> dict[str, object]:
        """One vector as a FeatureVector-shaped dict (NaN -> None), for APIs and the online store."""
        values = self.matrix[i]
        return {
            "machine_id": self.machine_ids[i],
            "machine_type": self.machine_type,
            "ts": int(self.ts[i]),
            "feature_set_version": self.feature_set_version,
            "features": {n: (None if v != v else float(v)) for n, v in zip(self.names, values, strict=True)},
            "site": self.sites[i] if self.sites else None,
        }


def encode(block: VectorBlock) -> bytes:
    rows, width = block.matrix.shape
    if width != len(block.names) or rows != len(block.machine_ids):
        raise ValueError(f"matrix {block.matrix.shape} does not match {len(block.machine_ids)} ids x "
                         f"{len(block.names)} names")
    flat = pa.array(np.ascontiguousarray(block.matrix, dtype=np.float64).ravel(), type=pa.float64())
    arrays = [
        pa.array(block.machine_ids, type=pa.string()),
        pa.array(np.asarray(block.ts, dtype=np.int64), type=pa.int64()),
        pa.array(block.sites if block.sites is not None else [None] * rows, type=pa.string()),
        pa.array(block.ingested_at if block.ingested_at is not None else [None] * rows, type=pa.int64()),
        pa.FixedSizeListArray.from_arrays(flat, width),
    ]
    schema = pa.schema(
        [("machine_id", pa.string()), ("ts", pa.int64()), ("site", pa.string()), ("ingested_at", pa.int64()),
         ("features", pa.list_(pa.float64(), width))],
        metadata={
            b"forewarn.block": BLOCK_FORMAT,
            b"feature_set_version": block.feature_set_version.encode(),
            b"machine_type": block.machine_type.encode(),
            b"names": orjson.dumps(block.names),
        },
    )
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def split(block: VectorBlock, max_bytes: int) -> list[VectorBlock]:
    """Cut a block into blocks whose feature payload stays under ``max_bytes`` (Kafka's message limit)."""
    row_bytes = 8 * max(1, len(block.names)) + 64
    rows = max(1, max_bytes // row_bytes)
    if len(block) <= rows:
        return [block]
    return [
        VectorBlock(
            machine_type=block.machine_type,
            feature_set_version=block.feature_set_version,
            names=block.names,
            machine_ids=block.machine_ids[start:start + rows],
            ts=block.ts[start:start + rows],
            matrix=block.matrix[start:start + rows],
            sites=block.sites[start:start + rows] if block.sites is not None else None,
            ingested_at=block.ingested_at[start:start + rows] if block.ingested_at is not None else None,
        )
        for start in range(0, len(block), rows)
    ]


def decode(payload: bytes) -> VectorBlock:
    reader = pa.ipc.open_stream(payload)
    meta = reader.schema.metadata or {}
    if meta.get(b"forewarn.block") != BLOCK_FORMAT:
        raise ValueError("not a forewarn feature block (missing forewarn.block=1 schema metadata)")
    table = reader.read_all()
    names = orjson.loads(meta[b"names"])
    features = table.column("features").combine_chunks()
    matrix = features.flatten().to_numpy(zero_copy_only=False).reshape(len(table), len(names))
    ingested = table.column("ingested_at")
    return VectorBlock(
        machine_type=meta[b"machine_type"].decode(),
        feature_set_version=meta[b"feature_set_version"].decode(),
        names=names,
        machine_ids=table.column("machine_id").to_pylist(),
        ts=table.column("ts").to_numpy(),
        matrix=matrix,
        sites=table.column("site").to_pylist(),
        ingested_at=None if ingested.null_count == len(table) else ingested.to_numpy(zero_copy_only=False),
    )


def block_from_dicts(vectors: list[dict]) -> list[VectorBlock]:
    """FeatureVector-shaped dicts -> blocks (grouped by type, version and feature names)."""
    groups: dict[tuple, list[dict]] = {}
    for vector in vectors:
        key = (vector["machine_type"], vector["feature_set_version"], tuple(vector["features"]))
        groups.setdefault(key, []).append(vector)
    blocks = []
    for (machine_type, version, names), members in groups.items():
        blocks.append(
            VectorBlock(
                machine_type=machine_type,
                feature_set_version=version,
                names=list(names),
                machine_ids=[v["machine_id"] for v in members],
                ts=np.array([v["ts"] for v in members], dtype=np.int64),
                matrix=np.array([list(v["features"].values()) for v in members], dtype=np.float64).reshape(
                    len(members), len(names)
                ),
                sites=[v.get("site") for v in members],
            )
        )
    return blocks
