"""``dvc repro`` runs the repository's dvc.yaml (etl build -> train -> evaluate) on a small lake.

The DVC project is a copy of the repository's: its dvc.yaml, .dvcignore and .dvc/config (the local remote
under the state folder), params.yaml with demo-sized training knobs, and the source folders the stages
depend on. The lake is the simulator's history turned into lake rows by the lake's own mapping
(:func:`forewarn.etl.lake.explode`), as ``forewarn etl stream`` writes them, without Kafka in between.
Checked: the first run runs every stage; a second does nothing; a changed training parameter reruns train
and evaluate but not the build; the training set's DVC hash (dvc.lock) is a tag of the MLflow run and of
the registered version; ``dvc push`` / ``dvc pull`` restore the training set from the local remote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from forewarn import topics
from forewarn.errors import UserError
from forewarn.etl import lake
from forewarn.training.pipeline import DVC_MD5_TAG, dvc_dataset_md5

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# 12 machines over 10 days (about 16k readings, 20 failures): enough failures for a grouped, time-aware holdout.
SIMULATE = ["-n", "12", "--duration", "10d", "--interval", "10m", "--degrading-fraction", "0.99", "--seed", "7",
            "--start", "2026-01-01T00:00:00Z", "--no-progress"]


def kafka_records(objects: list[dict], topic: str, partitions: int = 2) -> pd.DataFrame:
    """The objects as single-object Kafka records, keyed and partitioned by machine (as the producers do)."""
    offsets, rows = [0] * partitions, []
    for obj in objects:
        partition = sum(obj["machine_id"].encode()) % partitions
        rows.append({"kafka_topic": topic, "kafka_partition": partition, "kafka_offset": offsets[partition],
                     "kafka_timestamp": pd.Timestamp(obj["ts"], unit="ms"), "kafka_key": obj["machine_id"],
                     "value": orjson.dumps(obj)})
        offsets[partition] += 1
    return pd.DataFrame(rows)


def write_lake_dataset(rows: pd.DataFrame, lake_dir: Path, spec: lake.Dataset) -> None:
    """Lake rows as Parquet files under ``<lake>/<dataset>/date=...`` with the lake's column types."""
    types = {"STRING": pa.string(), "INT": pa.int32(), "BIGINT": pa.int64(), "TIMESTAMP": pa.timestamp("us"),
             "BINARY": pa.binary()}
    parsed = {"string": pa.string(), "long": pa.int64(), "numbers": pa.map_(pa.string(), pa.float64())}
    schema = pa.schema([*(pa.field(n, types[t]) for n, t in lake.KAFKA_COLUMNS),
                        *(pa.field(f.name, parsed[f.kind]) for f in spec.fields)])
    rows = rows.copy()
    for f in spec.fields:
        if f.kind == "numbers":
            rows[f.name] = [list(v.items()) if isinstance(v, dict) else None for v in rows[f.name]]
    for date, part in rows.groupby(lake.DATE_COLUMN):
        folder = lake.dataset_path(lake_dir, spec.name) / f"{lake.DATE_COLUMN}={date}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part.drop(columns=[lake.DATE_COLUMN]), schema=schema, preserve_index=False)
        pq.write_table(table, folder / "part-00000.parquet")


def small_lake(tmp: Path, lake_dir: Path, env: dict[str, str]) -> None:
    sim = tmp / "simulated"
    subprocess.run([str(BIN / "forewarn"), "simulate", "--to", "parquet", str(sim), *SIMULATE], env=env,
                   check=True, capture_output=True, timeout=120)
    readings = pd.read_parquet(sim / "readings").drop(columns=["date"])
    sensors = [c for c in readings.columns if c not in ("machine_id", "machine_type", "ts")]
    objects = [{"machine_id": str(r[0]), "machine_type": str(r[1]), "ts": int(r[2]),
                "values": {s: v for s, v in zip(sensors, r[3:], strict=True) if not np.isnan(v)}}
               for r in readings.itertuples(index=False)]
    spec = lake.dataset(lake.READINGS)
    write_lake_dataset(lake.explode(kafka_records(objects, topics.SENSOR_READINGS), spec), lake_dir, spec)
    truth = pd.read_parquet(sim / "ground_truth").drop(columns=["date"])
    events = [{"machine_id": str(r.machine_id), "machine_type": str(r.machine_type), "ts": int(r.ts),
               "kind": str(r.kind), "mode": None if r.mode is None else str(r.mode)} for r in truth.itertuples()]
    spec = lake.dataset(lake.GROUND_TRUTH)
    write_lake_dataset(lake.explode(kafka_records(events, topics.GROUND_TRUTH), spec), lake_dir, spec)
    lake.dataset_path(lake_dir, lake.FEEDBACK).mkdir()  # no operator feedback yet: an empty dataset


def dvc_project(project: Path, experiment: str) -> None:
    """The repository's DVC files and the source folders its stages depend on, copied to ``project``."""
    project.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for dep in sorted({d for s in stages.values() for d in s.get("deps", []) if d.startswith("src/")}):
        if (ROOT / dep).is_dir():
            shutil.copytree(ROOT / dep, project / dep, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (project / dep).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / dep, project / dep)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(experiment=experiment, trials=1, max_rows=60_000, flags={"quick": True})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_dvc_repro_runs_the_chain_once_reruns_what_a_param_touches_and_tags_the_run(stack, uid, tmp_path) -> None:
    from mlflow import MlflowClient

    model, experiment = f"test-dvc-{uid}", f"test-dvc-{uid}"
    project = tmp_path / "project"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "FOREWARN_MLFLOW__TRACKING_URI": stack.settings.mlflow.tracking_uri,
           "FOREWARN_MLFLOW__MODEL_NAME": model, "FOREWARN_STACK__STATE_DIR": str(project / ".forewarn"),
           "FOREWARN_ASSET_CONFIG": "plant", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
           "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1"}

    def dvc(*args: str) -> str:
        done = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, f"dvc {' '.join(args)} exited {done.returncode}\n{done.stdout[-4000:]}\n" \
                                     f"{done.stderr[-4000:]}"
        return done.stdout + done.stderr

    dvc_project(project, experiment)
    small_lake(tmp_path, project / "data" / "lake", env)
    dvc("config", "--local", "core.no_scm", "true")  # no git repository here; the repository's config stays

    first = dvc("repro")
    for stage in ("etl_build", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first, first
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    (dataset_md5,) = [o["md5"] for o in lock["etl_build"]["outs"] if o["path"] == "data/training/dataset"]
    assert dataset_md5.endswith(".dir")
    trained = json.loads((project / "metrics" / "train.json").read_text())
    evaluated = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert trained["dataset_dvc_md5"] == evaluated["dataset_dvc_md5"] == dataset_md5
    client = MlflowClient(stack.settings.mlflow.tracking_uri)
    run = client.get_run(trained["run_id"])
    assert run.data.tags[DVC_MD5_TAG] == dataset_md5 and run.data.tags["kind"] == "train"
    manifest = json.loads((project / "data" / "training" / "manifest.json").read_text())
    assert run.data.tags["data_hash"] == manifest["content_hash"]  # trained on what this build wrote
    assert client.get_model_version(model, trained["version"]).tags[DVC_MD5_TAG] == dataset_md5
    assert evaluated["version"] == trained["version"] and evaluated["reproduces_training"] is True, evaluated
    assert 0.0 < evaluated["rescored_f1"] <= 1.0 and isinstance(evaluated["gates_passed"], bool)
    assert "holdout_f1" in dvc("metrics", "show", "--json")
    trail = [json.loads(line) for line in
             (project / ".forewarn" / "audit" / "trail.jsonl").read_text(encoding="utf-8").splitlines()]
    (training_record,) = [r for r in trail if r["action"] == "training.run"]
    assert training_record["object"]["id"] == trained["run_id"]
    assert training_record["details"][DVC_MD5_TAG] == dataset_md5  # the audit trail names the data version

    second = dvc("repro")
    assert "Running stage" not in second and "Data and pipelines are up to date." in second, second

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["seed"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc("status")
    assert "train:" in status and "etl_build:" not in status, status
    third = dvc("repro")
    assert "Running stage 'etl_build'" not in third and "Stage 'etl_build' didn't change" in third, third
    assert "Running stage 'train'" in third and "Running stage 'evaluate'" in third, third
    retrained = json.loads((project / "metrics" / "train.json").read_text())
    assert retrained["run_id"] != trained["run_id"] and retrained["version"] != trained["version"]
    assert client.get_run(retrained["run_id"]).data.params["seed"] == "1"
    assert client.get_run(retrained["run_id"]).data.tags[DVC_MD5_TAG] == dataset_md5  # the same data version
    assert json.loads((project / "metrics" / "evaluate.json").read_text())["version"] == retrained["version"]

    # The local remote under the state folder (.dvc/config: ../.forewarn/dvc-remote) restores the training set.
    dvc("push")
    assert any((project / ".forewarn" / "dvc-remote").rglob("*")), "dvc push wrote nothing to the local remote"
    shutil.rmtree(project / "data" / "training" / "dataset")
    shutil.rmtree(project / ".dvc" / "cache")
    dvc("pull")
    assert "Data and pipelines are up to date." in dvc("status")
    assert dvc_dataset_md5(project / "data" / "training", project / "dvc.lock") == dataset_md5


def test_a_lock_that_does_not_describe_the_training_set_is_refused(tmp_path) -> None:
    """dvc_dataset_md5 names a hash only for the build the lock recorded: a manifest rewritten since (a
    rebuild outside DVC) or a lock without the dataset is a clear error, never a wrong tag."""
    data = tmp_path / "data" / "training"
    (data / "dataset" / "machine_type=pump").mkdir(parents=True)
    (data / "dataset" / "machine_type=pump" / "part-0.parquet").write_bytes(b"PAR1")
    (data / "manifest.json").write_text('{"content_hash": "sha256:a"}\n')
    manifest_md5 = hashlib.md5((data / "manifest.json").read_bytes(), usedforsecurity=False).hexdigest()
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"etl_build": {"outs": [
        {"path": "data/training/dataset", "md5": "0123.dir"},
        {"path": "data/training/manifest.json", "md5": manifest_md5}]}}}))
    assert dvc_dataset_md5(data, lock) == "0123.dir"
    (data / "manifest.json").write_text('{"content_hash": "sha256:b"}\n')
    with pytest.raises(UserError, match="rebuilt outside DVC"):
        dvc_dataset_md5(data, lock)
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"other": {"outs": [{"path": "x", "md5": "1"}]}}}))
    with pytest.raises(UserError, match="no stage in"):
        dvc_dataset_md5(data, lock)
