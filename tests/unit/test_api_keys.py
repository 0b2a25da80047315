"""The shared API-key settings (forewarn.api_keys), tested once through every service that uses them: a
documented dev default, a production service that refuses to start without real keys, and deploy-file
placeholders (REPLACE_ME) refused outside development."""

from __future__ import annotations

import os
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from forewarn.api_keys import DEV_API_KEY, ApiKeyOptions, ApiKeySettings, holds_placeholder
from forewarn.services.alerter.settings import AlerterSettings
from forewarn.services.ingest.settings import IngestSettings

STRONG = "q8Jv0mV1cX3kz7pT2rYw5nLb"
REAL_KEY = "k3y-0f-sufficient-length-123"

SERVICES = pytest.mark.parametrize(("settings_type", "variable"), [
    (IngestSettings, "FOREWARN_INGEST__API_KEYS"),
    (AlerterSettings, "FOREWARN_ALERTER__API_KEYS"),
], ids=["ingest", "alerter"])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FOREWARN_"):
            monkeypatch.delenv(name)


@SERVICES
def test_development_defaults_to_the_dev_key(settings_type: type[ApiKeySettings], variable: str) -> None:
    assert settings_type().accepted_keys() == (DEV_API_KEY.encode(),)


@SERVICES
@pytest.mark.parametrize(("raw", "expected"), [
    ("a-key", [b"a-key"]),
    (" one , two ,", [b"one", b"two"]),
    ('["one", "two"]', [b"one", b"two"]),
])
def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, settings_type: type[ApiKeySettings],
                                   variable: str, raw: str, expected: list[bytes]) -> None:
    monkeypatch.setenv(variable, raw)
    assert list(settings_type().accepted_keys()) == expected


@SERVICES
def test_keys_are_secret_in_reprs(monkeypatch: pytest.MonkeyPatch, settings_type: type[ApiKeySettings],
                                  variable: str) -> None:
    monkeypatch.setenv(variable, STRONG)
    assert STRONG not in repr(settings_type())


@SERVICES
def test_production_without_keys_refuses_to_start(monkeypatch: pytest.MonkeyPatch,
                                                  settings_type: type[ApiKeySettings], variable: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match=rf"{variable} is not set.*secrets\.token_urlsafe"):
        settings_type()


@SERVICES
@pytest.mark.parametrize("keys", ["", DEV_API_KEY, "changeme", f"{STRONG},placeholder", "short-key",
                                  '["REPLACE_ME"]', f"{STRONG}-REPLACE_ME"])
def test_production_refuses_missing_or_placeholder_keys(monkeypatch: pytest.MonkeyPatch,
                                                        settings_type: type[ApiKeySettings], variable: str,
                                                        keys: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, keys)
    with pytest.raises(ValidationError, match=variable):
        settings_type()


@SERVICES
@pytest.mark.parametrize("key", [DEV_API_KEY, "changeme", "short"])
def test_production_rejects_placeholder_keys(monkeypatch: pytest.MonkeyPatch, settings_type: type[ApiKeySettings],
                                             variable: str, key: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, f"{REAL_KEY},{key}")
    with pytest.raises(ValidationError, match=f"{variable} entry 2 is a placeholder"):
        settings_type()


@SERVICES
@pytest.mark.parametrize(("raw", "expected"), [
    (STRONG, (STRONG.encode(),)),
    (f" {REAL_KEY} , {REAL_KEY}-2", (REAL_KEY.encode(), f"{REAL_KEY}-2".encode())),
])
def test_production_with_real_keys_accepts_only_them(monkeypatch: pytest.MonkeyPatch,
                                                     settings_type: type[ApiKeySettings], variable: str,
                                                     raw: str, expected: tuple[bytes, ...]) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, raw)
    assert settings_type().accepted_keys() == expected


# The placeholders the shipped deploy files hold (k8s/overlays/prod/secrets/alerter.env), per setting.
NOTIFIER_PLACEHOLDERS = pytest.mark.parametrize(("variable", "value", "notifier"), [
    ("FOREWARN_ALERTER__SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/REPLACE_ME", "slack"),
    ("FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY", "REPLACE_ME", "pagerduty"),
    ("FOREWARN_ALERTER__WEBHOOK_URL", "https://hooks.example.com/REPLACE_ME", "webhook"),
])


@NOTIFIER_PLACEHOLDERS
def test_production_refuses_placeholder_notifier_secrets(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                         value: str, notifier: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", REAL_KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=rf"{variable} still holds the placeholder 'REPLACE_ME'.*"
                                              r"Set the real secret.*FOREWARN_ENVIRONMENT=development"):
        AlerterSettings()


def test_every_placeholder_notifier_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", REAL_KEY)
    monkeypatch.setenv("FOREWARN_ALERTER__SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/REPLACE_ME")
    monkeypatch.setenv("FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY", "replace_me")
    with pytest.raises(ValidationError, match="FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY, "
                                              "FOREWARN_ALERTER__SLACK_WEBHOOK_URL still hold"):
        AlerterSettings()


@NOTIFIER_PLACEHOLDERS
def test_development_accepts_placeholder_notifier_secrets(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                          value: str, notifier: str) -> None:
    monkeypatch.setenv(variable, value)
    assert notifier in AlerterSettings().alerter.notifier_configs()


def test_production_with_real_notifier_secrets_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", REAL_KEY)
    monkeypatch.setenv("FOREWARN_ALERTER__SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")
    monkeypatch.setenv("FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY", "R" * 32)
    assert set(AlerterSettings().alerter.notifier_configs()) == {"slack", "pagerduty"}


class _DemoOptions(ApiKeyOptions):
    token: SecretStr | None = None
    urls: list[str] = []


class _DemoSettings(ApiKeySettings):
    api_key_section: ClassVar[str] = "demo"
    placeholder_checked_settings: ClassVar[tuple[str, ...]] = ("token", "urls")
    demo: _DemoOptions = _DemoOptions()


def test_the_mixin_derives_variable_names_from_the_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_DEMO__API_KEYS", REAL_KEY)
    monkeypatch.setenv("FOREWARN_DEMO__URLS", '["https://ok.example.com", "https://x/REPLACE_ME"]')
    with pytest.raises(ValidationError, match="FOREWARN_DEMO__URLS still holds"):
        _DemoSettings()
    monkeypatch.delenv("FOREWARN_DEMO__URLS")
    assert _DemoSettings().env_name("token") == "FOREWARN_DEMO__TOKEN"
    assert _DemoSettings().accepted_keys() == (REAL_KEY.encode(),)


@pytest.mark.parametrize(("value", "expected"), [
    ("REPLACE_ME", True), (SecretStr("https://h/replace_me"), True), (["ok", SecretStr("REPLACE_ME")], True),
    ("a-real-secret", False), (SecretStr("x"), False), (None, False), (5.0, False), ([], False),
])
def test_holds_placeholder(value: object, expected: bool) -> None:
    assert holds_placeholder(value) is expected
