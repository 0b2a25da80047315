"""The secure profile's Redis ACL rules (pure) and the shared client factory's options: each service's key
patterns match the keys its own code makes and none of another service's, and no password is in the file."""

from __future__ import annotations

import fnmatch
import hashlib

import pytest
import redis
from pydantic import SecretStr

from forewarn.errors import UserError
from forewarn.online_store import RedisFeatureStore
from forewarn.redis_client import connection_options
from forewarn.retraining.lock import last_run_key, lock_key
from forewarn.services.alerter.adapters.redis_store import RedisAlertStore
from forewarn.services.features.snapshot_store import RedisSnapshotStore
from forewarn.settings import RedisSettings
from forewarn.stack import secure
from forewarn.stack.secure_redis import GRANTS, acl_rules, password_hash

PREFIX = "fw"
PASSWORDS = {user: f"secret-of-{user}" for user in secure.REDIS_USERS}


def parse(lines: list[str]) -> dict[str, list[str]]:
    rules = {}
    for line in lines:
        word, user, *tokens = line.split()
        assert word == "user"
        rules[user] = tokens
    return rules


def patterns(tokens: list[str], *, writable: bool) -> list[str]:
    found = [t[1:] for t in tokens if t.startswith("~")]
    return found if writable else found + [t[3:] for t in tokens if t.startswith("%R~")]


def may(tokens: list[str], key: str, *, write: bool) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns(tokens, writable=write))


def service_keys() -> dict[str, list[str]]:
    """Keys each area's own code makes (not copies of the layout): the ACL must follow these."""
    client = redis.Redis()  # never connects: only the key functions are used
    online = RedisFeatureStore(client, PREFIX)
    alerts = RedisAlertStore(client, PREFIX, alert_retention_s=1, done_marker_ttl_s=1)
    return {
        "online": [online.key("m-1"), online.names_key("abc")],
        "snapshots": [RedisSnapshotStore(client, PREFIX, "forewarn-features", "sensor.readings").key(3)],
        "alerts": [alerts.state_key("m-1:any"), alerts.alert_key("a1"), alerts.index_key, alerts.active_key,
                   alerts.machine_index_key("m-1"), alerts.messages_key, alerts.deliveries_key, alerts.done_key("d"),
                   alerts.restless_key, alerts.restless_built_key, alerts.loaded_key("risk.scores:0")],
        "retrain": [lock_key(PREFIX), last_run_key(PREFIX)],
    }


def test_default_is_off_admin_may_do_everything_and_every_service_user_has_a_grant() -> None:
    rules = parse(acl_rules(PREFIX, PASSWORDS))
    assert rules["default"][0] == "off" and "-@all" in rules["default"] and "resetpass" in rules["default"]
    assert {"on", "~*", "&*", "+@all"} <= set(rules["admin"])
    assert set(rules) == {"default", *secure.REDIS_USERS}
    assert set(GRANTS) == set(secure.REDIS_USERS) - {"admin"}
    for user in GRANTS:
        tokens = rules[user]
        assert tokens[0] == "on" and "-@all" in tokens and "+@all" not in tokens and "~*" not in tokens
        assert tokens.index("-@all") < min(tokens.index(t) for t in tokens if t.startswith("+"))  # grants after


def test_the_file_holds_password_hashes_only() -> None:
    text = "\n".join(acl_rules(PREFIX, PASSWORDS))
    for user, password in PASSWORDS.items():
        assert password not in text
        assert password_hash(password) == "#" + hashlib.sha256(password.encode()).hexdigest()
        assert password_hash(password) in parse(text.splitlines())[user]


def test_each_service_reaches_its_own_keys_and_no_one_elses() -> None:
    rules = parse(acl_rules(PREFIX, PASSWORDS))
    keys = service_keys()
    # (service, area): None = no access, "r" = read only, "rw" = read and write
    expected = {
        "features": {"online": "rw", "snapshots": "rw", "alerts": None, "retrain": None},
        "scorer": {"online": "r", "snapshots": None, "alerts": None, "retrain": None},
        "alerter": {"online": None, "snapshots": None, "alerts": "rw", "retrain": None},
        "monitor": {"online": None, "snapshots": None, "alerts": None, "retrain": "rw"},
        "retrain": {"online": None, "snapshots": None, "alerts": None, "retrain": "rw"},
    }
    for user, areas in expected.items():
        for area, access in areas.items():
            for key in keys[area]:
                assert may(rules[user], key, write=False) == (access is not None), (user, key)
                assert may(rules[user], key, write=True) == (access == "rw"), (user, key)
    assert not may(rules["features"], "other:fv:m-1", write=False)  # the prefix is part of every pattern


def test_commands_follow_what_each_service_sends() -> None:
    rules = parse(acl_rules(PREFIX, PASSWORDS))

    def commands(user: str) -> set[str]:
        return {t[1:] for t in rules[user] if t.startswith("+")}

    assert {"evalsha", "script|load", "hset", "multi", "exec"} <= commands("features")
    assert commands("scorer") == {"ping", "hgetall", "get"}  # reads only
    assert {"watch", "multi", "exec", "scan", "zadd", "hset"} <= commands("alerter")
    assert {"eval", "set", "get", "del", "pexpire"} <= commands("retrain")
    assert commands("monitor") == commands("retrain")
    dangerous = {"flushall", "flushdb", "keys", "config", "acl", "debug", "shutdown", "select", "swapdb"}
    for user in GRANTS:
        assert not commands(user) & dangerous, user
        assert "client|setinfo" not in commands(user)
    assert "eval" not in commands("features") | commands("alerter")  # their scripts are loaded, not sent
    setinfo = parse(acl_rules(PREFIX, PASSWORDS, client_setinfo=True))
    assert all("+client|setinfo" in setinfo[user] for user in GRANTS)  # for a Redis 7.2 or newer


def test_a_prefix_other_than_fw_moves_every_pattern() -> None:
    rules = parse(acl_rules("plant7", PASSWORDS))
    assert patterns(rules["alerter"], writable=True) == ["plant7:{alerter}:*"]
    assert all(p.startswith("plant7:") for user in GRANTS for p in patterns(rules[user], writable=False))


def test_client_options_take_user_password_and_ca_from_settings_and_never_show_the_password() -> None:
    assert connection_options(RedisSettings()) == {}  # the default profile: what it always was
    settings = RedisSettings(url="rediss://127.0.0.1:17379/0", username="scorer", password=SecretStr("s3cret-pw"),
                             ssl_ca_certs="/state/secure/tls/ca.pem")
    assert connection_options(settings) == {
        "username": "scorer", "password": "s3cret-pw", "ssl_cert_reqs": "required", "ssl_check_hostname": True,
        "ssl_ca_certs": "/state/secure/tls/ca.pem"}
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings.model_dump())
    with pytest.raises(UserError, match="rediss://") as refused:
        connection_options(RedisSettings(ssl_ca_certs="/ca.pem"))  # a CA but a plaintext URL
    assert "s3cret" not in str(refused.value)
