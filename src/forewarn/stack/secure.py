"""The secure profile's principals and their generated credentials, and the settings each client gets.

One user per service on Kafka and on Redis (least privilege: each may touch only its own topics and keys),
an ``admin`` for the stack itself (topic creation, ACLs), ``retrain`` for the training chain and the CLI,
and on MLflow a ``reader`` (loads models) and a ``promoter`` (registers and moves aliases). Passwords are
random, generated once into ``<state>/secure/credentials.json`` (0600) and reused; nothing is ever printed
except through :func:`client_env`, which is what a process started by the local runner or a test is given.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from forewarn.stack.certs import LocalCA, ServerCert, ensure_ca, issue
from forewarn.stack.config import StackSettings

SERVICES: Final = ("ingest", "features", "scorer", "alerter", "monitor")
KAFKA_USERS: Final = ("admin", *SERVICES, "retrain")
REDIS_USERS: Final = ("admin", "features", "scorer", "alerter", "monitor", "retrain")
MLFLOW_USERS: Final = ("admin", "promoter", "reader")


@dataclass(frozen=True)
class Credentials:
    kafka: dict[str, str]
    redis: dict[str, str]
    mlflow: dict[str, str]

    def all_secrets(self) -> list[str]:
        """Every password (for the test that greps logs for them)."""
        return [*self.kafka.values(), *self.redis.values(), *self.mlflow.values()]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def credentials(settings: StackSettings) -> Credentials:
    """The profile's users and passwords, generated on first use."""
    path = settings.secure_dir / "credentials.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
    else:
        data = {"kafka": {u: secrets.token_urlsafe(24) for u in KAFKA_USERS},
                "redis": {u: secrets.token_urlsafe(24) for u in REDIS_USERS},
                "mlflow": {u: secrets.token_urlsafe(24) for u in MLFLOW_USERS}}
        _write_private(path, json.dumps(data, indent=2))
    return Credentials(kafka=dict(data["kafka"]), redis=dict(data["redis"]), mlflow=dict(data["mlflow"]))


def local_ca(settings: StackSettings) -> LocalCA:
    return ensure_ca(settings.secure_dir / "tls")


def server_cert(settings: StackSettings, component: str) -> ServerCert:
    return issue(local_ca(settings), component)


def client_env(settings: StackSettings, principal: str) -> dict[str, str]:
    """The FOREWARN_* (and MLFLOW_*) environment a process running as ``principal`` needs to reach the
    secure stack: one place, so no service builds its own TLS or credentials configuration."""
    env: dict[str, str] = {}
    return env
