"""One-off comparison behind a figure in docs/BENCHMARKS.md: the online store's write of 5,000 machines'
vectors as one pipelined HSET per machine (the previous code, kept here) against the script call per
1,000 machines that RedisFeatureStore.write_rows makes now. Same Redis, same rows, alternated.

    .venv/bin/python scripts/online_write_compare.py redis://127.0.0.1:16379/0
"""

from __future__ import annotations

import sys
import time
import uuid

import numpy as np
import orjson
import redis

from forewarn.bench.e2e import delete_redis_keys
from forewarn.online_store import RedisFeatureStore, names_id

MACHINES, FEATURES, REPEATS = 5000, 178, 5


def pipelined_hsets(store: RedisFeatureStore, names: list[str], ids: list[str], matrix: np.ndarray) -> None:
    ref = names_id(names)
    pipe = store.client.pipeline(transaction=False)
    pipe.set(store.names_key(ref), orjson.dumps(names))
    packed = np.ascontiguousarray(matrix, dtype="<f8")
    for i, machine_id in enumerate(ids):
        pipe.hset(store.key(machine_id), mapping={"ts": i, "version": "v", "type": "pump", "site": "s1",
                                                  "names": ref, "values": packed[i].tobytes()})
    pipe.execute()


def script_calls(store: RedisFeatureStore, names: list[str], ids: list[str], matrix: np.ndarray) -> None:
    store.write_rows(machine_type="pump", feature_set_version="v", names=names, machine_ids=ids,
                     ts=list(range(len(ids))), matrix=matrix, sites=["s1"] * len(ids))


def main(url: str) -> None:
    client = redis.Redis.from_url(url)
    prefix = f"online-write-compare-{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, prefix)
    names = [f"f{i}" for i in range(FEATURES)]
    ids = [f"m-{i:05d}" for i in range(MACHINES)]
    rng = np.random.default_rng(1)
    timings: dict[str, list[tuple[float, float]]] = {}
    try:
        for _ in range(2):
            for name, write in (("pipelined HSET per machine", pipelined_hsets), ("script per 1,000", script_calls)):
                for _ in range(REPEATS):
                    matrix = rng.random((MACHINES, FEATURES))
                    wall, cpu = time.perf_counter(), time.process_time()
                    write(store, names, ids, matrix)
                    timings.setdefault(name, []).append((time.perf_counter() - wall, time.process_time() - cpu))
    finally:
        delete_redis_keys(url, f"{prefix}:")
    for name, runs in timings.items():
        print(f"{name:28s} wall {1000 * np.median([w for w, _ in runs]):6.1f} ms, "
              f"this process's CPU {1000 * np.median([c for _, c in runs]):6.1f} ms (medians of {len(runs)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:16379/0")
