"""API keys: a documented dev default, and a production service that refuses to start without real keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from forewarn.errors import UserError
from forewarn.services.ingest.settings import DEV_API_KEY, IngestSettings

STRONG = "q8Jv0mV1cX3kz7pT2rYw5nLb"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FOREWARN_ENVIRONMENT", "FOREWARN_INGEST__API_KEYS"):
        monkeypatch.delenv(name, raising=False)


def test_development_defaults_to_the_dev_key() -> None:
    assert IngestSettings().accepted_keys() == (DEV_API_KEY.encode(),)


@pytest.mark.parametrize(("raw", "expected"), [
    ("a-key", [b"a-key"]),
    (" one , two ,", [b"one", b"two"]),
    ('["one", "two"]', [b"one", b"two"]),
])
def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[bytes]) -> None:
    monkeypatch.setenv("FOREWARN_INGEST__API_KEYS", raw)
    assert list(IngestSettings().accepted_keys()) == expected


def test_keys_are_secret_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_INGEST__API_KEYS", STRONG)
    assert STRONG not in repr(IngestSettings())


@pytest.mark.parametrize("keys", ["", DEV_API_KEY, "changeme", f"{STRONG},placeholder", "short-key"])
def test_production_refuses_missing_or_placeholder_keys(monkeypatch: pytest.MonkeyPatch, keys: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_INGEST__API_KEYS", keys)
    with pytest.raises(ValidationError, match="FOREWARN_INGEST__API_KEYS"):
        IngestSettings()


def test_production_with_real_keys_has_no_dev_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_INGEST__API_KEYS", STRONG)
    assert IngestSettings().accepted_keys() == (STRONG.encode(),)


def test_run_fails_at_start_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from forewarn.services.ingest.main import run

    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    with pytest.raises(UserError, match=r"FOREWARN_INGEST__API_KEYS is not set.*secrets\.token_urlsafe"):
        run()
