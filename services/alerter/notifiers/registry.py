"""The notifiers this alerter can deliver through, by name: the one list the settings (each plugin's
config fields become ``FOREWARN_ALERTER__<NAME>_<FIELD>``), the wiring and the policy's default routes
(every notifier whose ``in_default_routes`` holds) derive from. A new plugin is a :class:`HttpNotifier`
subclass added to :data:`NOTIFIERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, SecretStr, create_model

from .base import HttpNotifier, Notifier, NotifierConfig
from .pagerduty import PagerDutyNotifier
from .slack import SlackNotifier
from .slack_data_science import SlackDataScienceNotifier
from .webhook import WebhookNotifier

# Order matters: a policy route left unset lists them in this order, and deliveries are made in it.
NOTIFIERS: Mapping[str, type[HttpNotifier[Any]]] = {
    plugin.name: plugin for plugin in (PagerDutyNotifier, SlackNotifier, WebhookNotifier, SlackDataScienceNotifier)
}
NOTIFIER_NAMES: tuple[str, ...] = tuple(NOTIFIERS)
# What a route the policy file leaves unset goes to: the on-call notifiers, not the data scientists' channel.
DEFAULT_ROUTE_NAMES: tuple[str, ...] = tuple(name for name, plugin in NOTIFIERS.items() if plugin.in_default_routes)
# Fields every notifier has; the settings hold one value for all (notifier_<field>, e.g. notifier_timeout_s).
SHARED_FIELDS = tuple(NotifierConfig.model_fields)


def setting_name(notifier: str, field: str) -> str:
    return f"{notifier}_{field}"


def _own_fields(notifier: str) -> dict[str, Any]:
    config = NOTIFIERS[notifier].config_type
    return {name: info for name, info in config.model_fields.items() if name not in SHARED_FIELDS}


def notifier_settings_model() -> type[BaseModel]:
    """The settings' notifier section: one optional field per plugin config field. A required config
    field is None when unset, and a notifier with one of those unset is not configured."""
    fields: dict[str, Any] = {}
    for notifier in NOTIFIERS:
        for name, info in _own_fields(notifier).items():
            if info.is_required():
                fields[setting_name(notifier, name)] = (info.annotation | None, Field(
                    None, description=f"{info.description} Unset: no {notifier} notifications."))
            else:
                fields[setting_name(notifier, name)] = (info.annotation, Field(info.default,
                                                                               description=info.description))
    return create_model("NotifierSettings", **fields)


def _is_set(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value is not None and value != ""


def notifier_config(notifier: str, settings: BaseModel, shared: Mapping[str, Any]) -> NotifierConfig | None:
    """The config of ``notifier`` from the settings' notifier section (``shared``: the values of
    :data:`SHARED_FIELDS`), or None when it is not configured."""
    own = _own_fields(notifier)
    values = {name: getattr(settings, setting_name(notifier, name)) for name in own}
    if not all(_is_set(values[name]) for name, info in own.items() if info.is_required()):
        return None
    return NOTIFIERS[notifier].config_type(**values, **shared)


def build_notifiers(configs: Mapping[str, NotifierConfig]) -> dict[str, Notifier]:
    """One notifier per configured name, in registry order."""
    return {name: NOTIFIERS[name](configs[name]) for name in NOTIFIERS if name in configs}
