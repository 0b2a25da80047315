"""The training set's manifest: what it holds and from what, so a data version can be named and checked.

``content_hash`` is order-independent: the sum of a 64-bit hash of every row (over the columns in name
order) with the row count and the schema, so the same rows give the same hash however Spark split them
into files. ``config_hash`` covers the asset config, the build options and the feature-set version.
Nothing in the manifest depends on the clock or on file names, so the same input gives the same
manifest, byte for byte (DVC tracks it as a metrics file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forewarn.assets import AssetConfig
from forewarn.etl.spec import BuildSpec
from forewarn.features import FEATURE_SET_VERSION, feature_names

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MANIFEST = "manifest.json"
NORMALIZATION = "normalization.json"
MANIFEST_VERSION = 1


def _sha256(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def config_hash(config: AssetConfig, spec: BuildSpec) -> str:
    build = {k: v for k, v in spec.as_dict().items() if k != "config"}  # a name or a path: content counts
    return _sha256({"asset_config": config.model_dump(mode="json"), "build": build,
                    "feature_set_version": FEATURE_SET_VERSION})


def content_hash(frame: DataFrame) -> str:
    from pyspark.sql import functions as F

    columns = sorted(frame.columns)
    row = frame.select(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.xxhash64(*[F.col(f"`{c}`") for c in columns]).cast("decimal(38,0)")).alias("xx"),
        F.sum(F.hash(*[F.col(f"`{c}`") for c in columns]).cast("decimal(38,0)")).alias("murmur"),
    ).collect()[0]
    schema = [(f.name, f.dataType.simpleString()) for f in sorted(frame.schema.fields, key=lambda f: f.name)]
    return _sha256({"schema": schema, "rows": int(row["rows"]), "xx": str(row["xx"]), "murmur": str(row["murmur"])})


def write_manifest(*, out_dir: Path, dataset: Path, written: DataFrame, config: AssetConfig, spec: BuildSpec,
                   rows: dict[str, Any], normalization: dict[str, Any], lake_dir: Path) -> dict[str, Any]:
    features = {name: feature_names(mt) for name, mt in config.machine_types.items()}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": {"path": str(dataset), "format": "parquet", "partitioned_by": ["machine_type"]},
        "inputs": {"lake": str(lake_dir), "asset_config": config.name},
        "feature_set_version": FEATURE_SET_VERSION,
        "content_hash": content_hash(written),
        "config_hash": config_hash(config, spec),
        "build": spec.as_dict(),
        "label_definition": spec.label_definition(),
        "rows": rows,
        "columns": {
            "features_by_machine_type": features,
            "label": "failure_within_horizon",
            "targets": ["failure_within_horizon", "rul"],
            "never_features": ["failure_within_horizon", "rul", "time_to_failure_ms", "label_source", "machine_id",
                               "ts", "site", "kafka_topic", "kafka_partition", "kafka_offset", "arrival"],
        },
        "normalization_file": NORMALIZATION,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / NORMALIZATION).write_text(json.dumps(normalization, indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n",
                                    encoding="utf-8")
    return manifest
