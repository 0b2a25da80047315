"""The retraining lock's logic on an in-memory stand-in for Redis (the real one: tests/integration/
test_retrain.py): owner-checked release and extension, refusal naming the holder, heartbeat, lost lock."""

from __future__ import annotations

import time

import pytest

from forewarn.retraining import lock as locks
from forewarn.retraining.lock import AlreadyRunning, RetrainLock, held, lock_key


class FakeRedis:
    """SET NX PX, GET, and the lock's two Lua scripts, with a clock the test moves."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, float]] = {}
        self.now = 0.0

    def _live(self, key: str) -> str | None:
        item = self.data.get(key)
        if item is None or item[1] <= self.now:
            self.data.pop(key, None)
            return None
        return item[0]

    def set(self, key: str, value: str, nx: bool = False, px: int | None = None) -> bool | None:
        if nx and self._live(key) is not None:
            return None
        self.data[key] = (value, self.now + px / 1000 if px is not None else float("inf"))
        return True

    def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value.encode() if value is not None else None

    def eval(self, script: str, _n: int, key: str, owner: str, *args: object) -> int:
        if self._live(key) != owner:
            return 0
        if script == locks._RELEASE:
            del self.data[key]
        else:
            assert script == locks._EXTEND
            self.data[key] = (owner, self.now + int(args[0]) / 1000)  # type: ignore[call-overload]
        return 1


def test_key_lives_under_the_prefix() -> None:
    assert lock_key("fw") == "fw:retrain:lock"


def test_second_acquire_is_refused_and_release_is_only_by_the_owner() -> None:
    redis = FakeRedis()
    first, second = RetrainLock(redis, "k", "a", ttl_s=10), RetrainLock(redis, "k", "b", ttl_s=10)
    assert first.acquire() and not second.acquire()
    assert second.holder() == "a"
    assert not second.release() and first.holder() == "a"
    assert not second.extend()
    assert first.release() and first.holder() is None
    assert second.acquire()


def test_a_lapsed_lock_is_taken_over_and_the_old_owner_cannot_free_it() -> None:
    redis = FakeRedis()
    dead, heir = RetrainLock(redis, "k", "dead", ttl_s=10), RetrainLock(redis, "k", "heir", ttl_s=10)
    assert dead.acquire()
    redis.now += 11
    assert heir.acquire()
    assert not dead.release() and not dead.extend() and heir.holder() == "heir"


def test_held_refuses_naming_the_holder_and_releases_after_the_block() -> None:
    redis = FakeRedis()
    other = RetrainLock(redis, "k", "host:1:x", ttl_s=30)
    assert other.acquire()
    with pytest.raises(AlreadyRunning, match=r"owner host:1:x"):
        with held(RetrainLock(redis, "k", "me", ttl_s=30)):
            pass
    other.release()
    mine = RetrainLock(redis, "k", "me", ttl_s=30)
    with held(mine):
        assert mine.holder() == "me"
    assert mine.holder() is None


def test_heartbeat_extends_and_flags_a_lost_lock() -> None:
    redis = FakeRedis()
    beat = RetrainLock(redis, "k", "me", ttl_s=2)
    assert beat.acquire()
    beat.start_heartbeat(interval_s=0.02)
    redis.now += 1.5
    time.sleep(0.1)
    redis.now += 1.5  # past the first TTL: alive only because the heartbeat extended it
    assert beat.holder() == "me" and not beat.lost.is_set()
    redis.data["k"] = ("thief", redis.now + 100)
    deadline = time.monotonic() + 2
    while not beat.lost.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert beat.lost.is_set()
    beat.stop_heartbeat()


def test_is_running_is_false_when_redis_is_away() -> None:
    class Away:
        def get(self, _key: str) -> None:
            raise ConnectionError("down")

    assert not locks.is_running(RetrainLock(Away(), "k", "me"))
    redis = FakeRedis()
    assert not locks.is_running(RetrainLock(redis, "k", "me"))
    RetrainLock(redis, "k", "other").acquire()
    assert locks.is_running(RetrainLock(redis, "k", "me"))
