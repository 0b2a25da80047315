"""The shared API-key settings (forewarn.api_keys), tested once through every service that uses them: keys
bound to principals and roles, stored hashed; documented development keys (one per role); a production
service that refuses to start without real hashed keys; and deploy-file placeholders (REPLACE_ME) refused
outside development."""

from __future__ import annotations

import json
import os
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from forewarn.access import DEV_ROLE_KEYS, Role, hash_key
from forewarn.api_keys import DEV_API_KEY, ApiKeyOptions, ApiKeySettings, holds_placeholder
from forewarn.services.alerter.settings import AlerterSettings
from forewarn.services.ingest.settings import IngestSettings
from forewarn.services.monitor.settings import MonitorSettings
from forewarn.services.scorer.settings import ScorerSettings

STRONG = "q8Jv0mV1cX3kz7pT2rYw5nLb"
REAL_KEY = "k3y-0f-sufficient-length-123"
ALL_ROLES = frozenset(Role)


def entries(*items: tuple[str, list[str], str]) -> str:
    """FOREWARN_<SECTION>__API_KEYS text: (name, roles, key) → the JSON list of hashed entries."""
    return json.dumps([{"name": name, "roles": roles, "key_sha256": hash_key(key)} for name, roles, key in items])


REAL_ENTRY = entries(("line-3-gateway", ["plant"], REAL_KEY))

SERVICES = pytest.mark.parametrize(("settings_type", "variable"), [
    (IngestSettings, "FOREWARN_INGEST__API_KEYS"),
    (AlerterSettings, "FOREWARN_ALERTER__API_KEYS"),
    (ScorerSettings, "FOREWARN_SCORER__API_KEYS"),
    (MonitorSettings, "FOREWARN_MONITOR__API_KEYS"),
], ids=["ingest", "alerter", "scorer", "monitor"])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FOREWARN_"):
            monkeypatch.delenv(name)


@SERVICES
def test_development_defaults_to_the_dev_keys(settings_type: type[ApiKeySettings], variable: str) -> None:
    settings = settings_type()
    access = settings.access()
    assert settings.uses_development_keys()
    dev = access.authenticate(DEV_API_KEY)
    assert dev is not None and dev.roles == ALL_ROLES
    for role, key in DEV_ROLE_KEYS.items():
        principal = access.authenticate(key)
        assert principal is not None and principal.roles == {role} and principal.name == f"dev-{role.value}"
    assert access.authenticate("forewarn-dev-admin") is None and access.authenticate("") is None
    assert access.authenticate(None) is None


@SERVICES
@pytest.mark.parametrize(("raw", "expected"), [
    ("a-key", ["a-key"]),
    (" one , two ,", ["one", "two"]),
    ('["one", "two"]', ["one", "two"]),
])
def test_plain_keys_in_development_hold_every_role(monkeypatch: pytest.MonkeyPatch,
                                                   settings_type: type[ApiKeySettings], variable: str, raw: str,
                                                   expected: list[str]) -> None:
    monkeypatch.setenv(variable, raw)
    access = settings_type().access()
    assert [h.principal.roles for h in access.holders] == [ALL_ROLES] * len(expected)
    assert all(access.authenticate(key) is not None for key in expected)
    assert access.authenticate(DEV_API_KEY) is None  # configured keys replace the development ones


@SERVICES
def test_entries_bind_keys_to_principals_and_roles(monkeypatch: pytest.MonkeyPatch,
                                                   settings_type: type[ApiKeySettings], variable: str) -> None:
    monkeypatch.setenv(variable, entries(("gw", ["plant"], "k-plant-0123456789"),
                                         ("ana", ["operator", "viewer"], "k-ana-0123456789"),
                                         ("ana", ["operator"], "k-ana-rotated-0123")))
    settings = settings_type()
    access = settings.access()
    assert not settings.uses_development_keys()
    gateway, ana, rotated = (access.authenticate(k) for k in ("k-plant-0123456789", "k-ana-0123456789",
                                                              "k-ana-rotated-0123"))
    assert gateway is not None and gateway.name == "gw" and gateway.roles == {Role.PLANT}
    assert ana is not None and ana.name == "ana" and ana.may(Role.VIEWER) and not ana.may(Role.ENGINEER)
    assert rotated is not None and rotated.name == "ana"  # two keys of one principal while rotating
    assert access.authenticate(hash_key("k-plant-0123456789")) is None  # the stored hash is not a key
    assert all(access.authenticate(k) is None for k in (DEV_API_KEY, *DEV_ROLE_KEYS.values()))


@SERVICES
def test_keys_are_secret_in_reprs(monkeypatch: pytest.MonkeyPatch, settings_type: type[ApiKeySettings],
                                  variable: str) -> None:
    monkeypatch.setenv(variable, STRONG)
    assert STRONG not in repr(settings_type())


@SERVICES
@pytest.mark.parametrize(("raw", "message"), [
    ('[{"name": "x", "roles": ["plant"], "key_sha256": "REPLACE_ME"}]', r"entry 1 \('x'\): key_sha256 is not"),
    ('[{"name": "x", "roles": ["plant"], "key_sha256": "abc"}]', r"entry 1 \('x'\): key_sha256 is not the 64 hex"),
    (entries(("a", ["plant"], STRONG), ("b", ["viewer"], STRONG)), r"entry 2 \('b'\) has the key of 'a'"),
])
def test_malformed_entries_are_refused_everywhere(monkeypatch: pytest.MonkeyPatch,
                                                  settings_type: type[ApiKeySettings], variable: str, raw: str,
                                                  message: str) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValidationError, match=rf"{variable} {message}"):
        settings_type()


@SERVICES
@pytest.mark.parametrize("raw", [
    '[{"name": "x", "roles": [], "key_sha256": "' + "0" * 64 + '"}]',
    '[{"name": "x", "roles": ["admin"], "key_sha256": "' + "0" * 64 + '"}]',
    '[{"name": "x", "roles": ["plant"], "key": "plaintext-in-an-entry"}]',
])
def test_entries_need_known_roles_and_a_hash(monkeypatch: pytest.MonkeyPatch, settings_type: type[ApiKeySettings],
                                             variable: str, raw: str) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValidationError):
        settings_type()


@SERVICES
def test_production_without_keys_refuses_to_start(monkeypatch: pytest.MonkeyPatch,
                                                  settings_type: type[ApiKeySettings], variable: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match=rf"{variable} is not set.*forewarn keys new.*secrets\.token_urlsafe"):
        settings_type()


@SERVICES
@pytest.mark.parametrize("keys", ["", DEV_API_KEY, "changeme", f"{STRONG},placeholder", "short-key",
                                  '["REPLACE_ME"]', f"{STRONG}-REPLACE_ME", STRONG, f"{REAL_KEY},{STRONG}"])
def test_production_refuses_missing_placeholder_or_plain_keys(monkeypatch: pytest.MonkeyPatch,
                                                              settings_type: type[ApiKeySettings], variable: str,
                                                              keys: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, keys)
    with pytest.raises(ValidationError, match=variable):
        settings_type()


@SERVICES
def test_production_names_the_plain_key_and_says_how_to_hash_it(monkeypatch: pytest.MonkeyPatch,
                                                                settings_type: type[ApiKeySettings],
                                                                variable: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    mixed = json.loads(REAL_ENTRY) + [STRONG]
    monkeypatch.setenv(variable, json.dumps(mixed))
    with pytest.raises(ValidationError, match=f"{variable} entry 2 is a plain key.*forewarn keys hash"):
        settings_type()


@SERVICES
@pytest.mark.parametrize("key", [DEV_API_KEY, DEV_ROLE_KEYS[Role.ENGINEER], "changeme", "REPLACE_ME", ""])
def test_production_rejects_hashes_of_placeholder_keys(monkeypatch: pytest.MonkeyPatch,
                                                       settings_type: type[ApiKeySettings], variable: str,
                                                       key: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, entries(("real", ["plant"], REAL_KEY), ("lazy", ["engineer"], key)))
    with pytest.raises(ValidationError, match=f"{variable} entry 2 \\('lazy'\\) is the hash of a placeholder"):
        settings_type()


@SERVICES
def test_production_with_real_keys_accepts_only_them(monkeypatch: pytest.MonkeyPatch,
                                                     settings_type: type[ApiKeySettings], variable: str) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, entries(("gw", ["plant"], REAL_KEY), ("eve", ["engineer"], STRONG)))
    settings = settings_type()
    access = settings.access()
    assert not settings.uses_development_keys()
    gateway, engineer = access.authenticate(REAL_KEY), access.authenticate(STRONG)
    assert gateway is not None and gateway.name == "gw" and gateway.roles == {Role.PLANT}
    assert engineer is not None and engineer.may(Role.OPERATOR) and engineer.may(Role.VIEWER)
    assert not engineer.may(Role.PLANT)
    assert all(access.authenticate(k) is None for k in (DEV_API_KEY, *DEV_ROLE_KEYS.values(), "wrong"))


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
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", REAL_ENTRY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=rf"{variable} still holds the placeholder 'REPLACE_ME'.*"
                                              r"Set the real secret.*FOREWARN_ENVIRONMENT=development"):
        AlerterSettings()


def test_every_placeholder_notifier_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", REAL_ENTRY)
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
    monkeypatch.setenv("FOREWARN_ALERTER__API_KEYS", REAL_ENTRY)
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
    monkeypatch.setenv("FOREWARN_DEMO__API_KEYS", REAL_ENTRY)
    monkeypatch.setenv("FOREWARN_DEMO__URLS", '["https://ok.example.com", "https://x/REPLACE_ME"]')
    with pytest.raises(ValidationError, match="FOREWARN_DEMO__URLS still holds"):
        _DemoSettings()
    monkeypatch.delenv("FOREWARN_DEMO__URLS")
    assert _DemoSettings().env_name("token") == "FOREWARN_DEMO__TOKEN"
    principal = _DemoSettings().access().authenticate(REAL_KEY)
    assert principal is not None and principal.name == "line-3-gateway"


@pytest.mark.parametrize(("value", "expected"), [
    ("REPLACE_ME", True), (SecretStr("https://h/replace_me"), True), (["ok", SecretStr("REPLACE_ME")], True),
    ("a-real-secret", False), (SecretStr("x"), False), (None, False), (5.0, False), ([], False),
])
def test_holds_placeholder(value: object, expected: bool) -> None:
    assert holds_placeholder(value) is expected
