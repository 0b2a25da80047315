"""MLflow in the secure profile: its basic-auth app over HTTPS, and the users the project's clients log in as.

The server is ``mlflow server --app-name basic-auth`` behind uvicorn's TLS (a certificate from the local
CA). Its auth config (``basic_auth.ini``, 0600, in MLflow's data folder) names the auth database and the
``admin`` user's bootstrap password, so the password is never on a command line. Nobody but admin has any
right by default (``default_permission = NO_PERMISSIONS``); after start the stack creates, as admin:

- ``reader`` (the services): READ on every registered model (it loads versions and their artifacts, it
  cannot register a version or move an alias) and EDIT on experiments and runs, because the monitor logs
  its drift-report runs beside the champion's training run and prunes old ones;
- ``promoter`` (the training chain, the CLI): EDIT on experiments, runs and registered models: logs
  training runs, registers versions and moves aliases (a promotion), but cannot grant rights or delete a model.

Passwords come from :func:`forewarn.stack.secure.credentials`; provisioning is idempotent and re-applies
the current passwords, so a rotated ``credentials.json`` takes effect at the next ``stack up``.
"""

from __future__ import annotations

import configparser
import io
import os
import secrets
import shlex
from pathlib import Path
from typing import Final

import httpx

from forewarn.errors import UserError
from forewarn.stack import secure
from forewarn.stack.config import StackSettings

ADMIN: Final = "admin"
READER: Final = "reader"
PROMOTER: Final = "promoter"

# (resource type, permission) granted on every resource of that type ("*"): MLflow 3.17's per-user grants.
GRANTS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    READER: (("registered_model", "READ"), ("experiment", "EDIT"), ("run", "MANAGE")),
    PROMOTER: (("registered_model", "EDIT"), ("experiment", "EDIT"), ("run", "EDIT")),
}

USERS_CREATE: Final = "/api/2.0/mlflow/users/create"
USERS_GET: Final = "/api/2.0/mlflow/users/get"
USERS_UPDATE_PASSWORD: Final = "/api/2.0/mlflow/users/update-password"  # noqa: S105 - a path
USERS_CURRENT: Final = "/api/2.0/mlflow/users/current"
PERMISSIONS_GRANT: Final = "/api/3.0/mlflow/users/permissions/grant"


def tracking_uri(settings: StackSettings) -> str:
    return f"https://{settings.stack.host}:{settings.stack.mlflow_port}"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_auth_config(settings: StackSettings, data_dir: Path) -> Path:
    """MLflow's ``basic_auth.ini`` (0600): nobody has a right by default, admin's password from credentials."""
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": f"sqlite:///{data_dir / 'basic_auth.db'}",
        "admin_username": ADMIN,
        "admin_password": secure.credentials(settings).mlflow[ADMIN],
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # Each request's password check is a slow hash (~0.3 s here); one worker, and every change goes
        # through its API (which drops the entry), so caching a verified login for a minute is safe.
        "auth_cache_ttl_seconds": "60",
    }
    text = io.StringIO()
    config.write(text)
    path = data_dir / "basic_auth.ini"
    _write_private(path, text.getvalue())
    return path


def _flask_secret_key(settings: StackSettings) -> str:
    """The basic-auth app's CSRF key: generated once, kept beside the credentials (0600)."""
    path = settings.secure_dir / "mlflow-flask-secret"
    if not path.is_file():
        _write_private(path, secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def server_argv(settings: StackSettings) -> list[str]:
    """What the server command line adds in the secure profile (no secret: they are in files and env)."""
    cert = secure.server_cert(settings, "mlflow")
    tls = f"--ssl-certfile {shlex.quote(str(cert.cert))} --ssl-keyfile {shlex.quote(str(cert.key))}"
    return ["--app-name", "basic-auth", "--uvicorn-opts", tls]


def server_env(settings: StackSettings, data_dir: Path) -> dict[str, str]:
    return {"MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(settings, data_dir)),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": _flask_secret_key(settings)}


def http_client(settings: StackSettings, user: str | None) -> httpx.Client:
    """An HTTPS client of the secure MLflow, verified against the local CA, logged in as ``user`` (or nobody)."""
    import ssl

    auth = (user, secure.credentials(settings).mlflow[user]) if user else None
    return httpx.Client(base_url=tracking_uri(settings), auth=auth, timeout=10,
                        verify=ssl.create_default_context(cafile=str(secure.local_ca(settings).cert)))


def users_ready(settings: StackSettings) -> bool:
    """True when ``reader`` and ``promoter`` log in with their current passwords."""
    for user in (READER, PROMOTER):
        with http_client(settings, user) as client:
            if client.get(USERS_CURRENT).status_code != 200:
                return False
    return True


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400 and "RESOURCE_ALREADY_EXISTS" not in response.text:
        # The response names the rule that failed, never a password.
        raise UserError(f"MLflow refused to {what} ({response.status_code}: {response.text[:300]}); "
                        f"its log is in the stack's logs folder (forewarn stack status)")


def provision(settings: StackSettings) -> None:
    """Create ``reader`` and ``promoter`` (or reset their passwords) and grant their rights, as admin."""
    passwords = secure.credentials(settings).mlflow
    with http_client(settings, ADMIN) as admin:
        for user, grants in GRANTS.items():
            if admin.get(USERS_GET, params={"username": user}).status_code == 200:
                _check(admin.patch(USERS_UPDATE_PASSWORD, json={"username": user, "password": passwords[user]}),
                       f"update the password of {user}")
            else:
                _check(admin.post(USERS_CREATE, json={"username": user, "password": passwords[user]}),
                       f"create the user {user}")
            for resource_type, permission in grants:
                _check(admin.post(PERMISSIONS_GRANT, json={"username": user, "resource_type": resource_type,
                                                           "resource_id": "*", "permission": permission}),
                       f"grant {permission} on every {resource_type} to {user}")
