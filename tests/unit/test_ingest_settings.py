"""Ingest settings at start. The API-key rules themselves (dev default, production refusals) are tested once
for every service in test_api_keys.py."""

from __future__ import annotations

import pytest

from forewarn.errors import UserError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FOREWARN_ENVIRONMENT", "FOREWARN_INGEST__API_KEYS"):
        monkeypatch.delenv(name, raising=False)


def test_run_fails_at_start_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from forewarn.services.ingest.main import run

    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    with pytest.raises(UserError, match=r"FOREWARN_INGEST__API_KEYS is not set.*secrets\.token_urlsafe"):
        run()
