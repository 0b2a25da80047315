"""The alert-state repository over Redis: policy state per dedup key, alert records, and the outboxes that
make Kafka records and notifications survive a crash. The key layout is specified in docs/ONLINE_STORE.md
(section 'alerter keys'); change both together.

Every change the policy decides is written in one MULTI/EXEC transaction guarded by WATCH on the dedup
keys' hashes, so the stream loop, the escalation tick and the feedback API (in this or another replica)
never overwrite each other's decisions: the loser of a race re-reads and decides again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import redis
from redis.exceptions import WatchError

from forewarn.alerting.changes import Changes, Stored
from forewarn.alerting.events import DeliveryJob, OutMessage
from forewarn.alerting.policy import ACTIVE, Alert, Tracker, at_rest
from forewarn.schemas import AlertState

from ..ports import AlertNotFound, StateLost, StoreConflict

log = logging.getLogger(__name__)

_TRACKER_FIELDS = tuple(name for name in Tracker.model_fields if name != "alert")
# Wire name in Redis (kept): the hash field per input partition holds a scores_wire.position, not an offset.
_POSITION_FIELD = "offset:"
MAX_WATCH_RETRIES = 20


class RedisAlertStore:
    def __init__(
        self, client: redis.Redis, key_prefix: str, *, alert_retention_s: int, done_marker_ttl_s: int
    ) -> None:
        self.redis = client
        # One hash tag: every key lands in one Redis Cluster slot, so MULTI/EXEC spans them all.
        self.ns = ns = f"{key_prefix}:{{alerter}}"
        self.alert_retention_s = alert_retention_s
        self.done_marker_ttl_s = done_marker_ttl_s
        self.index_key = f"{ns}:alerts"
        self.active_key = f"{ns}:active"
        # The dedup keys not at rest (policy.at_rest): only their non-high scores need the policy.
        self.restless_key = f"{ns}:restless"
        # Present once the restless set covers every stored tracker (it is built once per Redis).
        self.restless_built_key = f"{ns}:restless:built"
        self.messages_key = f"{ns}:outbox:messages"
        self.deliveries_key = f"{ns}:outbox:deliveries"

    # ---- keys (docs/ONLINE_STORE.md, 'alerter keys') ---------------------------------------------
    def state_key(self, dedup_key: str) -> str:
        return f"{self.ns}:state:{dedup_key}"

    def alert_key(self, alert_id: str) -> str:
        return f"{self.ns}:alert:{alert_id}"

    def machine_index_key(self, machine_id: str) -> str:
        return f"{self.ns}:alerts:machine:{machine_id}"

    def done_key(self, delivery_id: str) -> str:
        return f"{self.ns}:done:{delivery_id}"

    def loaded_key(self, source: str) -> str:
        """Present while Redis holds the state built from input partition ``source`` ('topic:partition')."""
        return f"{self.ns}:loaded:{source}"

    # ---- reading ---------------------------------------------------------------------------------
    def ping(self) -> bool:
        return bool(self.redis.ping())

    def _decode_state(self, raw: dict[str, str]) -> Stored:
        if not raw:
            return Stored(None, {})
        positions = {k[len(_POSITION_FIELD):]: int(v) for k, v in raw.items() if k.startswith(_POSITION_FIELD)}
        data = {name: orjson.loads(raw[name]) for name in _TRACKER_FIELDS if name in raw}
        data["alert"] = orjson.loads(raw["alert"]) if raw.get("alert") else None
        return Stored(Tracker.model_validate(data), positions)

    def load(self, dedup_keys: Iterable[str]) -> dict[str, Stored]:
        keys = list(dict.fromkeys(dedup_keys))
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self.state_key(key))
        return {key: self._decode_state(raw) for key, raw in zip(keys, pipe.execute(), strict=True)}

    def missing_loaded(self, sources: Iterable[str]) -> list[str]:
        """The input partitions whose state Redis does not hold (never built, or lost with a restart)."""
        wanted = list(dict.fromkeys(sources))
        if not wanted:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for source in wanted:
            pipe.exists(self.loaded_key(source))
        return [source for source, present in zip(wanted, pipe.execute(), strict=True) if not present]

    def restless_keys(self) -> set[str]:
        """The dedup keys not at rest. Builds the set from the stored trackers when Redis has none yet (a
        store written before the set existed, or Redis restarted empty; then there is nothing to scan)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self.restless_built_key)
        pipe.smembers(self.restless_key)
        built, members = pipe.execute()
        if built:
            return set(members)
        restless = set()
        prefix = self.state_key("")
        state_keys = list(self.redis.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(state_keys), 1000):
            chunk = state_keys[start:start + 1000]
            pipe = self.redis.pipeline(transaction=False)
            for state_key in chunk:
                pipe.hmget(state_key, "status", "high_count")
            for state_key, (status, high_count) in zip(chunk, pipe.execute(), strict=True):
                if status is None:
                    continue
                if orjson.loads(status) != "idle" or int(orjson.loads(high_count or "0")) != 0:
                    restless.add(state_key[len(prefix):])
        pipe = self.redis.pipeline(transaction=True)
        if restless:
            pipe.sadd(self.restless_key, *restless)
        pipe.set(self.restless_built_key, "1")
        pipe.execute()
        log.info("built the set of dedup keys not at rest", extra={"fields": {"keys": len(restless)}})
        return restless | set(members)

    def active_keys(self) -> list[str]:
        return sorted(self.redis.smembers(self.active_key))

    def get_alert(self, alert_id: str) -> Alert | None:
        raw = self.redis.get(self.alert_key(alert_id))
        return Alert.model_validate_json(raw) if raw else None

    def list_alerts(
        self, *, state: AlertState | None = None, machine_id: str | None = None, since: int | None = None,
        until: int | None = None, limit: int = 100,
    ) -> list[Alert]:
        """Newest first by opened time (event time)."""
        index = self.machine_index_key(machine_id) if machine_id else self.index_key
        high = "+inf" if until is None else until
        low = "-inf" if since is None else since
        found: list[Alert] = []
        start, page = 0, 200
        while len(found) < limit:
            ids = self.redis.zrevrangebyscore(index, high, low, start=start, num=page)
            if not ids:
                break
            docs = self.redis.mget([self.alert_key(i) for i in ids])
            expired = [i for i, doc in zip(ids, docs, strict=True) if doc is None]
            if expired:  # resolved alerts expire after the retention; drop them from the indexes lazily
                self.redis.zrem(index, *expired)
            for doc in docs:
                if doc is None:
                    continue
                alert = Alert.model_validate_json(doc)
                if state is None or alert.state == state:
                    found.append(alert)
            start += page
        return found[:limit]

    def pending_messages(self) -> list[OutMessage]:
        raw = self.redis.hgetall(self.messages_key)
        return sorted((OutMessage.model_validate_json(v) for v in raw.values()),
                      key=lambda m: (m.created_at, m.id))

    def pending_deliveries(self) -> list[DeliveryJob]:
        raw = self.redis.hgetall(self.deliveries_key)
        return sorted((DeliveryJob.model_validate_json(v) for v in raw.values()),
                      key=lambda j: (j.created_at, j.event.alert_id, j.event.revision, j.notifier))

    # ---- writing ---------------------------------------------------------------------------------
    def _write(self, pipe: Any, changes: Changes) -> None:
        for dedup_key, tracker in changes.trackers.items():
            mapping = {name: orjson.dumps(getattr(tracker, name)).decode() for name in _TRACKER_FIELDS}
            mapping["alert"] = tracker.alert.model_dump_json() if tracker.alert else ""
            for source, position in changes.positions.get(dedup_key, {}).items():
                mapping[f"{_POSITION_FIELD}{source}"] = str(position)
            pipe.hset(self.state_key(dedup_key), mapping=mapping)
            if tracker.status in ACTIVE:
                pipe.sadd(self.active_key, dedup_key)
            else:
                pipe.srem(self.active_key, dedup_key)
            if at_rest(tracker):
                pipe.srem(self.restless_key, dedup_key)
            else:
                pipe.sadd(self.restless_key, dedup_key)
        for alert in changes.alerts.values():
            expire = None if alert.active else self.alert_retention_s
            pipe.set(self.alert_key(alert.id), alert.model_dump_json(), ex=expire)
            pipe.zadd(self.index_key, {alert.id: alert.opened_ts})
            pipe.zadd(self.machine_index_key(alert.machine_id), {alert.id: alert.opened_ts})
        if changes.messages:
            pipe.hset(self.messages_key, mapping={m.id: m.model_dump_json() for m in changes.messages})
        if changes.deliveries:
            pipe.hset(self.deliveries_key, mapping={j.id: j.model_dump_json() for j in changes.deliveries})

    def _transact(self, watch: Callable[[Any], None], compute: Callable[[], Changes]) -> Changes:
        for _ in range(MAX_WATCH_RETRIES):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    watch(pipe)
                    changes = compute()
                    pipe.multi()
                    self._write(pipe, changes)
                    pipe.execute()
                    return changes
                except WatchError:
                    log.info("alerter state changed concurrently; deciding again")
        raise StoreConflict("alerter state kept changing concurrently; gave up for now")

    def update_keys(
        self, dedup_keys: Iterable[str], decide: Callable[[dict[str, Stored]], Changes],
        require_loaded: Iterable[str] = (),
    ) -> Changes:
        """Read dedup keys, let ``decide`` compute the changes, write them atomically (retry on races).

        ``require_loaded``: input partitions whose state must be in Redis; if one's marker is missing
        (Redis restarted empty), raise :class:`StateLost` instead of deciding from an empty state. The
        markers are watched too, so a flush between this check and the write aborts the write."""
        keys = list(dict.fromkeys(dedup_keys))
        sources = list(dict.fromkeys(require_loaded))

        def watch(pipe: Any) -> None:
            watched = [self.state_key(k) for k in keys] + [self.loaded_key(s) for s in sources]
            if watched:
                pipe.watch(*watched)

        def compute() -> Changes:
            missing = self.missing_loaded(sources)
            if missing:
                raise StateLost(missing)
            return decide(self.load(keys))

        # Reads go through a second, pipelined connection: WATCH still sees any write after it.
        return self._transact(watch, compute)

    def write_rebuilt(self, changes: Changes, sources: Iterable[str], chunk: int = 500) -> None:
        """Write a rebuilt state (trackers with their positions, alert records) in chunks, then the markers
        of ``sources``: the markers go last, so a crash midway leaves them missing and the rebuild reruns."""
        trackers = list(changes.trackers.items())
        alerts = list(changes.alerts.items())
        for start in range(0, max(len(trackers), len(alerts)), chunk):
            part = Changes(trackers=dict(trackers[start:start + chunk]), alerts=dict(alerts[start:start + chunk]),
                           positions={k: changes.positions[k] for k, _ in trackers[start:start + chunk]
                                      if k in changes.positions})
            with self.redis.pipeline(transaction=True) as pipe:
                self._write(pipe, part)
                pipe.execute()
        with self.redis.pipeline(transaction=True) as pipe:
            for source in dict.fromkeys(sources):
                pipe.set(self.loaded_key(source), "1")
            pipe.execute()

    def update_alert(self, alert_id: str, decide: Callable[[Alert, Stored], Changes]) -> Changes:
        """Feedback path: the alert record plus its dedup key's state, atomically. Raises AlertNotFound."""
        box: dict[str, Alert] = {}

        def watch(pipe: Any) -> None:
            pipe.watch(self.alert_key(alert_id))
            alert = self.get_alert(alert_id)
            if alert is None:
                raise AlertNotFound(alert_id)
            pipe.watch(self.state_key(alert.dedup_key))
            box["alert"] = alert

        def compute() -> Changes:
            alert = box["alert"]
            return decide(alert, self.load([alert.dedup_key])[alert.dedup_key])

        return self._transact(watch, compute)

    def clear_messages(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.redis.hdel(self.messages_key, *ids)

    # ---- delivery ledger (used by the dispatcher) -----------------------------------------------
    def delivery_done(self, delivery_id: str) -> bool:
        return bool(self.redis.exists(self.done_key(delivery_id)))

    def finish_delivery(self, delivery_id: str, result: str) -> None:
        """Mark a delivery finished (delivered or dead-lettered) and take it out of the outbox."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.done_key(delivery_id), result, ex=self.done_marker_ttl_s)
        pipe.hdel(self.deliveries_key, delivery_id)
        pipe.execute()
