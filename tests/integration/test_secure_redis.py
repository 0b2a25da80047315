"""Redis on the secure profile (forewarn.stack.secure_redis), against the real server of the ``secure_stack``:
TLS only, no plaintext and no anonymous client, a wrong password refused, and each service's ACL user able
to do what its own code does (online store, feature snapshots, alert state, retraining lock) and nothing
outside its keys and commands. Every client is made by forewarn.redis_client.connect from the settings that
secure.client_env hands a service."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.alerter_store_contract import AlertStoreContract, tracker

from forewarn.alerting.changes import Changes
from forewarn.online_store import RedisFeatureStore, names_id
from forewarn.redis_client import connect
from forewarn.retraining.lock import RetrainLock, held, is_running, lock_key, read_last_run, redis_lock, write_last_run
from forewarn.services.alerter.adapters.redis_store import RedisAlertStore
from forewarn.services.features.snapshot_store import RedisSnapshotStore
from forewarn.settings import ForewarnSettings, RedisSettings
from forewarn.stack import secure, secure_redis
from forewarn.stack.config import StackSettings

# A refused connection is the answer here, not a blip to retry (redis-py retries three times by default).
ONE_TRY = Retry(NoBackoff(), 0)


@pytest.fixture(scope="module")
def settings(secure_stack: Any) -> StackSettings:
    stack_settings = secure_stack.settings
    assert isinstance(stack_settings, StackSettings)
    return stack_settings


def as_user(settings: StackSettings, principal: str, **kwargs: Any) -> redis.Redis:
    return connect(secure_redis.client_settings(settings, principal), socket_timeout=5, **kwargs)


def test_only_tls_clients_with_a_valid_acl_user_get_in_and_no_password_is_in_the_open(
    settings: StackSettings, secure_stack: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = settings.stack.host, settings.stack.redis_port
    with pytest.raises(redis.ConnectionError):  # plaintext on the TLS port: the server drops the connection
        redis.Redis(host=host, port=port, socket_timeout=3, retry=ONE_TRY).ping()
    ca_file = str(secure.local_ca(settings).cert)
    with pytest.raises(redis.AuthenticationError):  # TLS, but no user: default is off
        connect(RedisSettings(url=f"rediss://{host}:{port}/0", ssl_ca_certs=ca_file), socket_timeout=3).ping()
    scorer = secure_redis.client_settings(settings, "scorer")
    wrong = scorer.model_copy(update={"password": SecretStr("not-the-password")})
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair") as refused:
        connect(wrong, socket_timeout=3).ping()
    assert "not-the-password" not in str(refused.value)
    untrusted = scorer.model_copy(update={"ssl_ca_certs": None})
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):  # the server is verified
        connect(untrusted, socket_timeout=3, retry=ONE_TRY).ping()

    # Each principal's environment from client_env reaches Redis as that principal.
    for principal in secure.REDIS_USERS:
        with monkeypatch.context() as env:
            for name, value in secure.client_env(settings, principal).items():
                env.setenv(name, value)
            service_settings = ForewarnSettings().redis
        assert service_settings.url.startswith("rediss://") and service_settings.username == principal
        with connect(service_settings, socket_timeout=5) as client:
            assert client.ping()

    passwords = secure.credentials(settings).redis.values()
    acl_file = secure_redis.acl_path(settings)
    assert stat.S_IMODE(acl_file.stat().st_mode) == 0o600
    record = secure_stack.tracker.record("redis")
    assert record is not None
    argv = " ".join(secure_stack.components["redis"].argv())  # what the server was started with
    assert "--port 0 " in argv and "--tls-port" in argv and f"--aclfile {acl_file}" in argv
    shown = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode()  # what `ps` shows
    for password in passwords:  # hashes in the ACL file, nothing on a command line
        assert password not in acl_file.read_text() and password not in argv and password not in shown


@pytest.fixture
def admin(settings: StackSettings) -> Iterator[redis.Redis]:
    client = as_user(settings, "admin")
    client.execute_command("ACL", "LOG", "RESET")
    yield client
    client.close()


def acl_denials(admin: redis.Redis) -> set[tuple[str, str, str]]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return {(text(e["username"]), text(e["reason"]), text(e["object"])) for e in admin.acl_log(count=100)}


def test_each_service_does_its_own_work_and_nothing_outside_its_acl(settings: StackSettings, admin: redis.Redis,
                                                                     uid: str) -> None:
    prefix = settings.redis.key_prefix
    features, scorer, monitor, retrain = (as_user(settings, p) for p in ("features", "scorer", "monitor", "retrain"))
    alerter = as_user(settings, "alerter", decode_responses=True)  # as the alerter's wiring makes it
    machine = f"m-{uid}"
    names = ["vibration__1m__mean", "temperature__1m__max"]
    created: list[str] = []
    try:
        # features writes the online store (its Lua script) and keeps its snapshots; the scorer reads.
        online = RedisFeatureStore(features, prefix)
        online.write_rows(machine_type="pump", feature_set_version="v1", names=names, machine_ids=[machine],
                          ts=[1000], matrix=np.array([[1.5, np.nan]]))
        created += [online.key(machine), online.names_key(names_id(names))]
        snapshots = RedisSnapshotStore(features, prefix, f"app-{uid}", "sensor.readings")
        states = {"pump": {"signature": np.array("sig"), "machine_ids": np.array([machine]), "rows": np.ones((1, 3))}}
        snapshots.save(0, 41, states)
        created.append(snapshots.key(0))
        assert snapshots.load(0)[0] == 41 and snapshots.missing([0, 1]) == {1}
        vector = RedisFeatureStore(scorer, prefix).read(machine)
        assert vector is not None and vector.features == {"vibration__1m__mean": 1.5, "temperature__1m__max": None}

        # the alerter writes and reads its state (a WATCH/MULTI/EXEC transaction, the SCAN rebuild)
        alerts = RedisAlertStore(alerter, prefix, alert_retention_s=60, done_marker_ttl_s=60)
        key = f"{machine}:any"
        pending = {key: tracker(key, status="pending", high_count=1)}
        alerts.update_keys(pending, lambda _stored: Changes(trackers=pending))
        created += [alerts.state_key(key), alerts.restless_key, alerts.active_key]
        assert alerts.load([key])[key].tracker == pending[key]
        admin.delete(alerts.restless_built_key)  # a store that predates the set: rebuilt by a SCAN
        assert key in alerts.restless_keys()
        created.append(alerts.restless_built_key)

        # retrain takes the lock and records its run; the monitor sees both
        retrain_settings = secure_redis.client_settings(settings, "retrain")
        with held(redis_lock(retrain_settings, ttl_s=5)) as lock:
            assert is_running(RetrainLock(monitor, lock_key(prefix), owner="monitor-probe"))
            write_last_run(lock.client, prefix, {"run_id": uid, "ended_at_s": 1.0})
        assert not is_running(RetrainLock(monitor, lock_key(prefix), owner="monitor-probe"))
        assert read_last_run(monitor, prefix) == {"run_id": uid, "ended_at_s": 1.0}
        created.append(f"{prefix}:retrain:last")
        assert acl_denials(admin) == set()  # the allowed paths needed nothing they were not granted

        # outside their ACL: refused by Redis, whatever the client sends
        refusals: list[Callable[[], object]] = [
            lambda: features.set(alerts.alert_key(f"a-{uid}"), "{}"),   # alert state
            lambda: features.get(lock_key(prefix)),                     # the retraining lock
            lambda: features.flushall(),                                # admin commands
            lambda: RedisFeatureStore(scorer, prefix).write_rows(       # the scorer writing vectors
                machine_type="pump", feature_set_version="v1", names=names, machine_ids=[machine], ts=[2000],
                matrix=np.zeros((1, 2))),
            lambda: scorer.hset(online.key(machine), "ts", "0"),
            lambda: scorer.get(lock_key(prefix)),
            lambda: alerter.hgetall(online.key(machine)),               # another service's keys
            lambda: monitor.hgetall(online.key(machine)),
            lambda: retrain.get(alerts.alert_key(f"a-{uid}")),
        ]
        for attempt in refusals:
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
        denied = acl_denials(admin)
        assert {user for user, _reason, _object in denied} == {"features", "scorer", "alerter", "monitor", "retrain"}
        assert ("scorer", "command", "evalsha") in denied and ("features", "command", "flushall") in denied
        assert ("features", "key", alerts.alert_key(f"a-{uid}")) in denied
        # the refused write changed nothing
        assert RedisFeatureStore(scorer, prefix).read(machine).ts == 1000  # type: ignore[union-attr]
    finally:
        if created:
            admin.delete(*created)
        for client in (features, scorer, alerter, monitor, retrain):
            client.close()


class TestRedisAlertStoreAsTheAlerterUser(AlertStoreContract):
    """The whole alerter store contract through the alerter's ACL user: every command the store sends is
    granted. The user's keys carry the deployment's prefix, so each test clears that namespace (as admin)."""

    @pytest.fixture(autouse=True)
    def _redis(self, settings: StackSettings) -> Iterator[None]:
        self.prefix = settings.redis.key_prefix
        self.admin = as_user(settings, "admin")
        self._clear()
        self.client = as_user(settings, "alerter", decode_responses=True)
        yield
        self.client.close()
        self._clear()
        self.admin.close()

    def _clear(self) -> None:
        keys = list(self.admin.scan_iter(match=f"{self.prefix}:{{alerter}}:*", count=1000))
        if keys:
            self.admin.delete(*keys)

    def make_store(self) -> RedisAlertStore:
        return RedisAlertStore(self.client, self.prefix, alert_retention_s=60, done_marker_ttl_s=60)


def test_stack_up_on_a_running_server_puts_the_acl_file_back_in_force(settings: StackSettings,
                                                                       secure_stack: Any) -> None:
    with as_user(settings, "admin") as admin:
        admin.execute_command("ACL", "SETUSER", "scorer", "off")  # drift from the file
    with pytest.raises(redis.AuthenticationError):
        as_user(settings, "scorer").ping()
    secure_stack.components["redis"].reload()  # what `stack up` does when Redis already runs
    with as_user(settings, "scorer") as client:
        assert client.ping()
