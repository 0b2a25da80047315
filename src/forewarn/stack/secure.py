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
    # MLflow (forewarn.stack.secure_mlflow): HTTPS and basic auth; the MLflow client reads MLFLOW_TRACKING_*
    # itself. The training chain and the CLI register and promote; the services only read models.
    ca_file = str(local_ca(settings).cert)
    mlflow_user = "promoter" if principal in ("retrain", "admin") else "reader"
    env |= {"FOREWARN_MLFLOW__TRACKING_URI": f"https://{settings.stack.host}:{settings.stack.mlflow_port}",
            "MLFLOW_TRACKING_USERNAME": mlflow_user,
            "MLFLOW_TRACKING_PASSWORD": credentials(settings).mlflow[mlflow_user],
            "MLFLOW_TRACKING_SERVER_CERT_PATH": ca_file,
            # Plain httpx/ssl clients with no CA setting of their own (MLflow /health probes) trust the local CA.
            "SSL_CERT_FILE": ca_file}
    # The services' own APIs (forewarn.settings.TlsSettings): a service serves HTTPS with the "services"
    # certificate; every principal's clients verify against the local CA.
    env["FOREWARN_TLS__CA_FILE"] = ca_file
    if principal in SERVICES:
        services_cert = server_cert(settings, "services")
        env |= {"FOREWARN_TLS__HTTP_CERT_FILE": str(services_cert.cert),
                "FOREWARN_TLS__HTTP_KEY_FILE": str(services_cert.key)}
    # Redis (forewarn.stack.secure_redis): rediss:// against the local CA, as the principal's own ACL user.
    from forewarn.stack import secure_redis

    env |= secure_redis.client_env(settings, principal)
    # Kafka (forewarn.stack.secure_kafka): SASL_SSL with SCRAM-SHA-512 as the principal's own user.
    from forewarn.stack import secure_kafka

    env |= secure_kafka.client_env(settings, principal)
    return env
