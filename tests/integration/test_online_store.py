"""The online store on real Redis: round trip, latest wins, layout as documented."""

from __future__ import annotations

import math

import numpy as np
import redis

from forewarn.online_store import RedisFeatureStore, names_id
from forewarn.schemas import FeatureVector


def test_round_trip_and_layout(stack, uid) -> None:
    client = redis.Redis.from_url(stack.settings.redis.url)
    store = RedisFeatureStore(client, prefix=f"test-{uid}")
    names = ["vibration__1m__mean", "temperature__1m__max", "gap_ms"]
    store.write_rows(machine_type="pump", feature_set_version="v1", names=names, machine_ids=["a", "b"],
                     ts=[1000, 2000], matrix=np.array([[1.5, np.nan, 3.0], [4.0, 5.0, 6.0]]), sites=["s1", None])
    a = RedisFeatureStore(client, prefix=f"test-{uid}").read("a")  # a fresh reader: names come from Redis
    assert a is not None and a.ts == 1000 and a.site == "s1" and a.machine_type == "pump"
    assert a.features["vibration__1m__mean"] == 1.5 and a.features["temperature__1m__max"] is None
    raw = client.hgetall(f"test-{uid}:fv:b")
    assert set(raw) == {b"ts", b"version", b"type", b"site", b"names", b"values"}
    assert raw[b"names"].decode() == names_id(names)
    assert np.frombuffer(raw[b"values"], dtype="<f8").tolist() == [4.0, 5.0, 6.0]
    assert store.read("nobody") is None
    client.delete(*client.keys(f"test-{uid}:*"))


def test_write_keeps_the_latest_vector_per_machine(stack, uid) -> None:
    store = RedisFeatureStore(redis.Redis.from_url(stack.settings.redis.url), prefix=f"test-{uid}")
    vectors = [
        FeatureVector(machine_id="m", machine_type="pump", ts=ts, feature_set_version="v1",
                      features={"x": float(ts), "y": None})
        for ts in (3, 1, 2)
    ]
    store.write(vectors)
    latest = store.read("m")
    assert latest.ts == 3 and latest.features["x"] == 3.0 and latest.features["y"] is None
    assert not math.isnan(latest.features["x"])


def test_a_write_larger_than_one_script_call_lands_whole_and_survives_a_script_flush(stack, uid) -> None:
    from forewarn.online_store import WRITE_CHUNK

    client = redis.Redis.from_url(stack.settings.redis.url)
    store = RedisFeatureStore(client, prefix=f"test-{uid}")
    n = 2 * WRITE_CHUNK + 7
    ids = [f"m{i}" for i in range(n)]
    matrix = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    store.write_rows(machine_type="pump", feature_set_version="v1", names=["x", "y"], machine_ids=ids,
                     ts=list(range(n)), matrix=matrix, sites=None)
    found = store.read_packed(ids)
    assert len(found) == n
    assert found[ids[-1]].ts == n - 1 and found[ids[-1]].values.tolist() == matrix[-1].tolist()
    assert found[ids[WRITE_CHUNK]].site is None
    # A Redis restarted empty forgets loaded scripts too: the next write must load it again by itself.
    client.script_flush()
    store.write_rows(machine_type="pump", feature_set_version="v1", names=["x", "y"], machine_ids=["late"],
                     ts=[7], matrix=np.array([[1.0, 2.0]]), sites=["s"])
    assert store.read("late").ts == 7
    keys = list(client.scan_iter(match=f"test-{uid}:*", count=5000))
    client.delete(*keys)
