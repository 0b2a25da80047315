"""``forewarn keys new | hash``: the printed key, once, and an entry a production service accepts for it."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from forewarn.access import Role, hash_key
from forewarn.cli.main import build_app
from forewarn.errors import UserError
from forewarn.services.alerter.settings import AlerterSettings
from forewarn.services.ingest.settings import IngestSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FOREWARN_"):
            monkeypatch.delenv(name)


def _run(*args: str, stdin: str | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(build_app(), list(args), input=stdin)
    return result.exit_code, [line.strip() for line in result.output.splitlines()]


def test_new_key_prints_the_key_once_and_an_entry_production_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = _run("keys", "new", "--role", "plant", "--name", "line-3-gateway")
    assert code == 0, lines
    key = lines[lines.index(next(x for x in lines if x.startswith("key"))) + 1]
    entry = json.loads(next(x for x in lines if x.startswith("{")))
    assert key.startswith("fw_") and len(key) >= 40 and sum(key in x for x in lines) == 1
    assert entry == {"name": "line-3-gateway", "roles": ["plant"], "key_sha256": hash_key(key)}
    assert "FOREWARN_INGEST__API_KEYS" in lines and "FOREWARN_ALERTER__API_KEYS" not in lines

    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_INGEST__API_KEYS", json.dumps([entry]))
    principal = IngestSettings().access().authenticate(key)
    assert principal is not None and principal.name == "line-3-gateway" and principal.roles == {Role.PLANT}
    assert _run("keys", "new", "--role", "plant", "--name", "x")[1] != lines  # a fresh key every time


def test_hash_reads_the_key_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "an-existing-key-of-sufficient-length"
    code, lines = _run("keys", "hash", "--role", "operator", "--role", "viewer", "--name", "ana", stdin=key + "\n")
    assert code == 0, lines
    entry = json.loads(next(x for x in lines if x.startswith("{")))
    assert entry == {"name": "ana", "roles": ["viewer", "operator"], "key_sha256": hash_key(key)}
    assert key not in "\n".join(lines) and "FOREWARN_ALERTER__API_KEYS" in lines
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", json.dumps([entry]))
    principal = AlerterSettings().access().authenticate(key)
    assert principal is not None and principal.may(Role.OPERATOR) and not principal.may(Role.ENGINEER)


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["keys", "new", "--role", "admin", "--name", "x"], None, "unknown role(s) admin"),
    (["keys", "new", "--role", "plant", "--name", " "], None, "--name must name"),
    (["keys", "hash", "--role", "plant", "--name", "x"], "short\n", "give the key on stdin"),
])
def test_mistakes_are_said_plainly(args: list[str], stdin: str | None, message: str) -> None:
    result = CliRunner().invoke(build_app(), args, input=stdin)
    assert isinstance(result.exception, UserError) and message in str(result.exception)
