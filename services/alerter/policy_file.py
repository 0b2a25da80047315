"""Load the alert policy file (YAML): ``defaults`` plus per-``machine_types`` overrides.

A machine type's entry overrides only the keys it names; ``severity`` and ``routes`` merge key by key too.
Its ``modes`` map overrides it in turn for single failure modes (for ``model_health``: conditions).
A route the file leaves unset goes to every on-call notifier (notifiers/registry.py DEFAULT_ROUTE_NAMES).

The reserved type ``model_health`` (forewarn.alerting.model_health) is the exception: its entry overrides
:data:`MODEL_HEALTH_POLICY`, not the file's defaults, because its inputs are window judgements (p_failure 0
or 1), not machine scores, and it must never inherit the on-call routes; a file without the entry gets
:data:`MODEL_HEALTH_POLICY` as it is.
Errors name the file, the key and the fix, because the person reading them is editing YAML.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forewarn.alerting.model_health import MODEL_HEALTH_TYPE
from forewarn.alerting.policy import Policy, PolicyBook, Routes

from .notifiers.registry import DEFAULT_ROUTE_NAMES
from .notifiers.slack_data_science import SlackDataScienceNotifier

SHIPPED = "default"
_NESTED = ("severity", "routes")

_DATA_SCIENCE = [SlackDataScienceNotifier.name]
MODEL_HEALTH_POLICY: dict[str, Any] = {
    # Active windows are p_failure 1.0, clear ones 0.0: any threshold between the two separates them.
    "enter_p": 0.5, "exit_p": 0.5, "rul_enter": None, "rul_exit": None,
    "min_consecutive": 2,  # two active windows in a row: one noisy window never alerts
    "resolve_after_low": 2, "resolve_after": None,
    "cooldown": "30m", "escalate_after": "4h", "max_escalations": 1,
    "severity": "warning",
    "routes": {"trigger": _DATA_SCIENCE, "escalate": _DATA_SCIENCE, "acknowledge": _DATA_SCIENCE,
               "resolve": _DATA_SCIENCE},
    "modes": {
        # One judgement per retraining run, not per window: the first refusal alerts, the next promotion
        # resolves, and a refusal right after a promotion alerts again.
        "retrain_refused": {"min_consecutive": 1, "resolve_after_low": 1, "cooldown": "0s"},
    },
}


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


def _split_modes(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """An entry's own keys, and its ``modes`` (per failure mode, or condition, overrides of the entry)."""
    modes = raw.get("modes") or {}
    if not isinstance(modes, dict) or not all(isinstance(v, dict) for v in modes.values()):
        raise AlertPolicyError(f"{where}.modes must map each failure mode to a mapping of policy keys")
    return {k: v for k, v in raw.items() if k != "modes"}, modes


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
        every = {action: list(DEFAULT_ROUTE_NAMES) for action in Routes.model_fields}
        defaults = {**defaults, "routes": {**every, **(defaults.get("routes") or {})}}
    book_defaults = _policy(defaults, f"{source}: defaults")
    by_type: dict[str, Policy] = {}
    by_mode: dict[str, dict[str, Policy]] = {}
    for name, override in {MODEL_HEALTH_TYPE: {}, **types}.items():
        where = f"{source}: machine_types.{name}"
        if not isinstance(override, dict):
            raise AlertPolicyError(f"{where} must be a mapping of policy keys")
        base, base_modes = _split_modes(MODEL_HEALTH_POLICY, where) if name == MODEL_HEALTH_TYPE else (defaults, {})
        own, modes = _split_modes(override, where)
        merged = _merge(base, own)
        by_type[str(name)] = _policy(merged, where)
        mode_overrides = {m: _merge(base_modes.get(m, {}), modes.get(m, {})) for m in {**base_modes, **modes}}
        if mode_overrides:
            by_mode[str(name)] = {str(m): _policy(_merge(merged, o), f"{where}.modes.{m}")
                                  for m, o in mode_overrides.items()}
    return PolicyBook(defaults=book_defaults, machine_types=by_type, modes=by_mode)


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
