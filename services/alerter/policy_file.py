"""Load the alert policy file (YAML): ``defaults`` plus per-``machine_types`` overrides.

A machine type's entry overrides only the keys it names; ``severity`` and ``routes`` merge key by key too.
A route the file leaves unset goes to every registered notifier (notifiers/registry.py).
Errors name the file, the key and the fix, because the person reading them is editing YAML.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forewarn.alerting.policy import Policy, PolicyBook, Routes

from .notifiers.registry import NOTIFIER_NAMES

SHIPPED = "default"
_NESTED = ("severity", "routes")


class AlertPolicyError(ValueError):
    """A policy file that cannot be used; the message says where and how to fix it."""


def shipped_policy_path() -> Path:
    return Path(str(resources.files("forewarn") / "resources" / "alert_policy.yaml"))


def _merge(defaults: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **override}
    for key in _NESTED:
        if isinstance(defaults.get(key), dict) and isinstance(override.get(key), dict):
            merged[key] = {**defaults[key], **override[key]}
    return merged


def _policy(raw: dict[str, Any], where: str) -> Policy:
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc']) or '(policy)'}: {err['msg']}" for err in exc.errors()
        )
        raise AlertPolicyError(f"invalid alert policy\n  {problems}") from None


def parse_policy_book(raw: Any, source: str = "<policy>") -> PolicyBook:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or not set(raw) <= {"defaults", "machine_types"}:
        raise AlertPolicyError(f"{source}: the top level must be a mapping with 'defaults' and 'machine_types'")
    defaults = raw.get("defaults") or {}
    types = raw.get("machine_types") or {}
    if not isinstance(defaults, dict) or not isinstance(types, dict):
        raise AlertPolicyError(f"{source}: 'defaults' and 'machine_types' must be mappings")
    if isinstance(defaults.get("routes") or {}, dict):  # anything else fails the validation below
        every = {action: list(NOTIFIER_NAMES) for action in Routes.model_fields}
        defaults = {**defaults, "routes": {**every, **(defaults.get("routes") or {})}}
    book_defaults = _policy(defaults, f"{source}: defaults")
    by_type = {}
    for name, override in types.items():
        if not isinstance(override, dict):
            raise AlertPolicyError(f"{source}: machine_types.{name} must be a mapping of policy keys")
        by_type[str(name)] = _policy(_merge(defaults, override), f"{source}: machine_types.{name}")
    return PolicyBook(defaults=book_defaults, machine_types=by_type)


def load_policy_book(name_or_path: str | Path = SHIPPED) -> PolicyBook:
    path = shipped_policy_path() if str(name_or_path) == SHIPPED else Path(name_or_path)
    if not path.is_file():
        raise AlertPolicyError(
            f"alert policy {str(name_or_path)!r} not found (looked at {path}); set FOREWARN_ALERTER__POLICY to "
            f"a YAML file or to '{SHIPPED}'"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AlertPolicyError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    return parse_policy_book(raw, str(path))
