"""The alerter's Redis store against real Redis: the set of keys not at rest, kept with every write and
built from the stored trackers when a store predates it."""

from __future__ import annotations

import redis

from forewarn.alerting.changes import Changes
from forewarn.alerting.policy import Tracker
from forewarn.services.alerter.adapters.redis_store import RedisAlertStore
from forewarn.settings import RedisSettings


def tracker(key: str, **update: object) -> Tracker:
    return Tracker(dedup_key=key, machine_id=key.split(":")[0], machine_type="pump").model_copy(update=update)


def test_restless_set_follows_every_write_and_is_built_for_an_older_store(stack: object, uid: str) -> None:
    client = redis.Redis.from_url(RedisSettings().url, decode_responses=True)
    store = RedisAlertStore(client, f"test-{uid}", alert_retention_s=60, done_marker_ttl_s=60)
    try:
        states = {
            "idle:any": tracker("idle:any", last_ts=5),
            "pending:any": tracker("pending:any", status="pending", high_count=2),
            "cooling:any": tracker("cooling:any", status="resolved", cooldown_until_ts=10),
        }
        store.update_keys(states, lambda _stored: Changes(trackers=states))
        assert store.restless_keys() == {"pending:any", "cooling:any"}

        back_to_rest = {"pending:any": tracker("pending:any", last_ts=9)}
        store.update_keys(back_to_rest, lambda _stored: Changes(trackers=back_to_rest))
        assert store.restless_keys() == {"cooling:any"}

        client.delete(store.restless_key, store.restless_built_key)  # a store written before the set existed
        assert store.restless_keys() == {"cooling:any"}
        assert client.exists(store.restless_built_key) and client.smembers(store.restless_key) == {"cooling:any"}
    finally:
        for key in client.scan_iter(match=f"test-{uid}:*"):
            client.delete(key)
