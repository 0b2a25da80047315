"""One retraining run at a time, across restarts and replicas: a Redis lock with an owner and a TTL.

``SET key owner NX PX ttl`` takes it; a heartbeat thread extends it while the run lives; release and
extension compare the owner first (Lua, atomically), so a run never frees or prolongs a lock it lost.
A run that dies stops its heartbeat, the TTL lapses, and the next ``acquire`` takes the lock over: no
manual cleanup after a crash, and a killed Job or restarted pod cannot wedge retraining.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from forewarn.errors import UserError

if TYPE_CHECKING:
    from forewarn.settings import RedisSettings

# KEYS[1] = lock key, ARGV[1] = owner (, ARGV[2] = ttl ms): act only while the lock is still ours.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_EXTEND = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
           "else return 0 end")


def lock_key(key_prefix: str) -> str:
    return f"{key_prefix}:retrain:lock"


def last_run_key(key_prefix: str) -> str:
    return f"{key_prefix}:retrain:last"


def write_last_run(client: Any, key_prefix: str, run: dict[str, Any]) -> None:
    """What the trigger's cooldown counts from, kept beside the lock so it survives a monitor restart."""
    client.set(last_run_key(key_prefix), json.dumps(run, sort_keys=True, default=str))


def read_last_run(client: Any, key_prefix: str) -> dict[str, Any] | None:
    value = client.get(last_run_key(key_prefix))
    if value is None:
        return None
    try:
        run = json.loads(value)
    except (TypeError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def new_owner() -> str:
    """Who holds the lock, readable in ``redis-cli get``: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RetrainLock:
    def __init__(self, client: Any, key: str, owner: str | None = None, ttl_s: float = 120.0) -> None:
        self.client, self.key, self.owner = client, key, owner or new_owner()
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.lost = threading.Event()  # set when a heartbeat found the lock gone or someone else's
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        """True when this owner holds the lock now (free, or lapsed after its owner died)."""
        return bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def extend(self) -> bool:
        return bool(self.client.eval(_EXTEND, 1, self.key, self.owner, self.ttl_ms))

    def release(self) -> bool:
        """Free the lock if it still is ours; False when it lapsed or someone else holds it."""
        self.stop_heartbeat()
        return bool(self.client.eval(_RELEASE, 1, self.key, self.owner))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def start_heartbeat(self, interval_s: float | None = None) -> None:
        # A third of the TTL: two missed beats (a GC pause, a slow Redis) still keep the lock.
        interval = interval_s if interval_s is not None else self.ttl_ms / 3000.0
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    if not self.extend():
                        self.lost.set()
                        return
                except Exception:  # noqa: BLE001, S112 - Redis away for a beat: the TTL covers the next
                    continue

        self._beat = threading.Thread(target=beat, name="retrain-lock-heartbeat", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=5)
        self._beat = None


def redis_client(settings: RedisSettings) -> Any:
    from forewarn.redis_client import connect

    return connect(settings, socket_timeout=5, socket_connect_timeout=5)


def redis_lock(settings: RedisSettings, ttl_s: float) -> RetrainLock:
    return RetrainLock(redis_client(settings), lock_key(settings.key_prefix), ttl_s=ttl_s)


def is_running(lock: RetrainLock) -> bool:
    """Whether any run holds the lock (the monitor's 'already running'); False when Redis is away."""
    try:
        return lock.holder() is not None
    except Exception:  # noqa: BLE001 - the run itself re-checks with acquire, so a miss here is safe
        return False


@contextmanager
def held(lock: RetrainLock) -> Iterator[RetrainLock]:
    """Hold the lock for the block, with a heartbeat; refuse, saying who holds it, when it is taken."""
    import redis

    try:
        taken = lock.acquire()
    except redis.RedisError as exc:
        raise UserError(f"cannot reach Redis for the retraining lock {lock.key!r}: {exc}; start it with "
                        "'forewarn stack up' or set FOREWARN_REDIS__URL") from exc
    if not taken:
        holder = lock.holder()
        raise AlreadyRunning(f"another retraining run holds the lock {lock.key!r} (owner {holder}); it is "
                             f"released when that run ends, or lapses {lock.ttl_ms // 1000} s after it died")
    lock.start_heartbeat()
    try:
        yield lock
    finally:
        try:
            lock.release()
        except redis.RedisError:
            pass  # the TTL frees it


class AlreadyRunning(UserError):
    pass
