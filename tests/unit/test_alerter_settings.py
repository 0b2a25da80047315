"""Alerter settings from the environment and the alert policy file. The API-key and placeholder-secret rules
are tested once for every service in test_api_keys.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from forewarn.services.alerter.policy_file import AlertPolicyError, load_policy_book, parse_policy_book
from forewarn.services.alerter.settings import AlerterSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FOREWARN_"):
            monkeypatch.delenv(name)


def test_development_defaults_to_no_notifiers() -> None:
    # The dev key default (accepted_keys) is asserted in test_api_keys.py, for the alerter too.
    settings = AlerterSettings()
    assert settings.alerter.port == 8002
    configs = settings.alerter.notifier_configs()
    assert (configs.get("slack"), configs.get("pagerduty"), configs.get("webhook")) == (None,) * 3


def test_notifiers_are_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ALERTER__SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")
    monkeypatch.setenv("FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY", "R" * 32)
    monkeypatch.setenv("FOREWARN_ALERTER__PAGERDUTY_URL", "http://127.0.0.1:9/v2/enqueue")
    monkeypatch.setenv("FOREWARN_ALERTER__WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("FOREWARN_ALERTER__NOTIFIER_TIMEOUT_S", "2.5")
    options = AlerterSettings().alerter
    configs = options.notifier_configs()
    slack, pagerduty, webhook = configs.get("slack"), configs.get("pagerduty"), configs.get("webhook")
    assert slack is not None and slack.webhook_url.get_secret_value().endswith("/X") and slack.timeout_s == 2.5
    assert pagerduty is not None and pagerduty.url == "http://127.0.0.1:9/v2/enqueue"
    assert webhook is not None and webhook.url == "http://127.0.0.1:9/hook"
    assert "hooks.slack.com" not in repr(options)  # secrets stay out of logs and tracebacks


def test_shipped_policy_loads_with_per_type_overrides() -> None:
    book = load_policy_book()
    assert book.for_type("pump").min_consecutive == 5
    assert book.for_type("pump").exit_p == book.defaults.exit_p
    assert book.for_type("turbofan").rul_enter == 30
    assert book.for_type("no-such-type") == book.defaults
    assert book.defaults.cooldown == 30 * 60_000


def test_policy_overrides_merge_nested_keys() -> None:
    book = parse_policy_book({
        "defaults": {"severity": {"critical": 0.95, "error": 0.85, "warning": 0.6}},
        "machine_types": {"pump": {"severity": {"warning": 0.5}, "routes": {"escalate": ["slack"]}}},
    })
    pump = book.for_type("pump")
    assert (pump.severity.warning, pump.severity.critical) == (0.5, 0.95)
    assert pump.routes.escalate == ("slack",) and pump.routes.trigger == ("pagerduty", "slack", "webhook")


def test_policy_errors_name_the_machine_type_and_key(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("defaults: {}\nmachine_types:\n  pump: {enter_p: 0.5, exit_p: 0.7}\n")
    with pytest.raises(AlertPolicyError, match="machine_types.pump"):
        load_policy_book(path)
    path.write_text("defaults: {enter_pp: 0.5}\n")
    with pytest.raises(AlertPolicyError, match="enter_pp"):
        load_policy_book(path)
    with pytest.raises(AlertPolicyError, match="not found"):
        load_policy_book(tmp_path / "missing.yaml")
