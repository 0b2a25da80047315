"""Redis in the secure profile: TLS only, and one ACL user per service with only its keys and commands.

The server listens on its TLS port alone (``--port 0``), with the component's certificate from the local CA;
clients prove who they are with an ACL user and password, not a client certificate
(``--tls-auth-clients no``), so a service needs the CA file and its password, nothing else. The users live
in an ACL file in the state folder (0600) that holds only SHA-256 hashes of the passwords, and that Redis
reads at start (``aclfile``): no password is ever on a command line, where ``ps`` would show it.

``default`` is off (a client that does not authenticate can run nothing), ``admin`` may do everything (the
stack's readiness check, tests, benches), and each principal of :data:`forewarn.stack.secure.REDIS_USERS`
gets :data:`GRANTS`: key patterns under ``settings.redis.key_prefix`` and the commands its code sends
(redis-py's handshake, HELLO and AUTH, needs no grant). The key layouts they follow are docs/ONLINE_STORE.md
(online store, alert state), ``services/features/snapshot_store.py`` and ``forewarn.retraining.lock``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from forewarn.settings import RedisSettings
from forewarn.stack.config import StackSettings

if TYPE_CHECKING:
    import redis

ACL_FILE: Final = "redis.acl"
ADMIN: Final = "admin"
# CLIENT SETINFO (sent by redis-py after AUTH, its reply ignored) exists from Redis 7.2; naming it in an
# ACL rule of an older server is an error that stops the server.
SETINFO_SINCE: Final = (7, 2)

_SCRIPTS = ("evalsha", "script|load")  # redis-py's Script: EVALSHA, and SCRIPT LOAD when Redis answers NOSCRIPT
_TRANSACTIONS = ("multi", "exec", "discard")
_OPTIMISTIC = ("watch", "unwatch")


@dataclass(frozen=True)
class Grant:
    """What one service may do: key patterns (after ``<prefix>:``) it reads and writes, patterns it may only
    read, and the commands it may run (inside scripts too: Redis checks a script's calls against the user)."""

    keys: tuple[str, ...]
    read_only_keys: tuple[str, ...]
    commands: tuple[str, ...]


_RETRAIN_LOCK = Grant(
    # SET NX PX takes the lock; EVAL runs the owner-checked release (GET, DEL) and extension (GET, PEXPIRE).
    keys=("retrain:*",), read_only_keys=(), commands=("get", "set", "eval", "del", "pexpire"),
)

GRANTS: Final[Mapping[str, Grant]] = {
    # Writes the online store (one script per chunk: SET of the name list, HSET per machine), reads its own
    # vectors back (HGETALL) after a restore, and keeps its partitions' snapshots (MULTI/HSET/EXEC, EXISTS, DEL).
    "features": Grant(keys=("fv:*", "fnames:*", "fstate:*"), read_only_keys=(),
                      commands=(*_SCRIPTS, "set", "hset", "hgetall", "get", "exists", "del", *_TRANSACTIONS)),
    # Reads the online store, nothing else.
    "scorer": Grant(keys=(), read_only_keys=("fv:*", "fnames:*"), commands=("hgetall", "get")),
    # The alert state: every key under one hash tag; WATCH/MULTI/EXEC transactions, and one SCAN (building the
    # set of dedup keys not at rest). SCAN is not limited by key patterns: it may list other keys' names,
    # never read them.
    "alerter": Grant(keys=("{alerter}:*",), read_only_keys=(),
                     commands=("get", "set", "mget", "exists", "hgetall", "hmget", "hset", "hdel", "smembers", "sadd",
                               "srem", "zadd", "zrem", "zrevrangebyscore", "scan", *_OPTIMISTIC, *_TRANSACTIONS)),
    # The monitor reads the lock (is a run going?) and the last run (cooldown); the retraining run it starts
    # locally is a subprocess with the monitor's environment, so it takes and holds the lock as the monitor.
    "monitor": _RETRAIN_LOCK,
    "retrain": _RETRAIN_LOCK,
}


def password_hash(password: str) -> str:
    """The form Redis keeps in an ACL file (``#<sha256 hex>``): the file never holds a password."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def acl_rules(prefix: str, passwords: Mapping[str, str], *, client_setinfo: bool = False) -> list[str]:
    """The ACL file's lines: ``default`` off, ``admin`` everything, each service its :data:`GRANTS`."""
    lines = ["user default off resetpass resetkeys resetchannels -@all"]
    for user, password in sorted(passwords.items()):
        if user == ADMIN:
            lines.append(f"user {ADMIN} on resetpass {password_hash(password)} ~* &* +@all")
            continue
        grant = GRANTS[user]
        keys = [f"~{prefix}:{p}" for p in grant.keys] + [f"%R~{prefix}:{p}" for p in grant.read_only_keys]
        commands = ["ping", *(["client|setinfo"] if client_setinfo else []), *grant.commands]
        lines.append(" ".join([f"user {user} on resetpass {password_hash(password)} resetkeys resetchannels",
                               *keys, "-@all", *(f"+{c}" for c in commands)]))
    return lines


def server_version(binary: str) -> tuple[int, int]:
    """(major, minor) of a redis-server binary, from ``redis-server --version`` ("... v=7.0.15 ...")."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=10).stdout
    found = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def acl_path(settings: StackSettings) -> Path:
    return settings.secure_dir / ACL_FILE


def write_acl_file(settings: StackSettings, binary: str) -> Path:
    """The ACL file (0600) for the profile's generated credentials; rewritten before every start."""
    from forewarn.stack import secure

    passwords = secure.credentials(settings).redis
    rules = acl_rules(settings.redis.key_prefix, passwords,
                      client_setinfo=server_version(binary) >= SETINFO_SINCE)
    path = acl_path(settings)
    secure._write_private(path, "\n".join(rules) + "\n")
    return path


def server_argv(settings: StackSettings) -> list[str]:
    """redis-server's TLS and ACL options: the TLS port only, the component's certificate, the ACL file
    (:func:`write_acl_file` writes it first)."""
    from forewarn.stack import secure

    cert = secure.server_cert(settings, "redis")
    return [
        "--port", "0",
        "--tls-port", str(settings.stack.redis_port),
        "--tls-cert-file", str(cert.cert),
        "--tls-key-file", str(cert.key),
        "--tls-ca-cert-file", str(secure.local_ca(settings).cert),
        # Clients authenticate with an ACL user and password; TLS encrypts and proves the server.
        "--tls-auth-clients", "no",
        "--aclfile", str(acl_path(settings)),
    ]


def client_settings(settings: StackSettings, principal: str) -> RedisSettings:
    """How ``principal`` reaches the profile's Redis: TLS against the local CA, as its own ACL user."""
    from pydantic import SecretStr

    from forewarn.stack import secure

    return RedisSettings(
        url=f"rediss://{settings.stack.host}:{settings.stack.redis_port}/0",
        key_prefix=settings.redis.key_prefix,
        username=principal,
        password=SecretStr(secure.credentials(settings).redis[principal]),
        ssl_ca_certs=str(secure.local_ca(settings).cert),
    )


def client_env(settings: StackSettings, principal: str) -> dict[str, str]:
    """The FOREWARN_REDIS__* environment of a process running as ``principal`` (none for a principal that
    has no Redis user, such as ingest)."""
    from forewarn.stack import secure

    if principal not in secure.REDIS_USERS:
        return {}
    redis_settings = client_settings(settings, principal)
    assert redis_settings.password is not None  # set just above
    return {
        "FOREWARN_REDIS__URL": redis_settings.url,
        "FOREWARN_REDIS__KEY_PREFIX": redis_settings.key_prefix,
        "FOREWARN_REDIS__USERNAME": principal,
        "FOREWARN_REDIS__PASSWORD": redis_settings.password.get_secret_value(),
        "FOREWARN_REDIS__SSL_CA_CERTS": str(redis_settings.ssl_ca_certs),
    }


def admin_client(settings: StackSettings, **kwargs: object) -> redis.Redis:
    from forewarn.redis_client import connect

    return connect(client_settings(settings, ADMIN), **kwargs)


def reload_acl(settings: StackSettings, binary: str) -> None:
    """Apply a regenerated ACL file to the running server (``stack up`` when it is already up). A changed
    admin password cannot log in to do it: then Redis must be restarted (``stack down``, ``stack up``)."""
    import redis

    from forewarn.errors import UserError

    write_acl_file(settings, binary)
    try:
        with admin_client(settings, socket_timeout=5) as client:
            client.execute_command("ACL", "LOAD")
    except redis.AuthenticationError as exc:
        raise UserError("Redis refused the admin password (credentials rotated?): restart it with "
                        "'forewarn stack down' then 'forewarn stack up --profile secure'") from exc
