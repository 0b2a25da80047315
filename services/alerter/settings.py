"""Settings of the alerter: ``FOREWARN_ALERTER__*`` on top of the shared Kafka and Redis settings.

Notifiers are enabled by configuring them: ``FOREWARN_ALERTER__SLACK_WEBHOOK_URL``,
``FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY`` (+ ``PAGERDUTY_URL``), ``FOREWARN_ALERTER__WEBHOOK_URL``,
``FOREWARN_ALERTER__SLACK_DATA_SCIENCE_WEBHOOK_URL`` (+ ``SLACK_DATA_SCIENCE_CHANNEL``): each registered
notifier's config fields, as ``<NOTIFIER>_<FIELD>`` (notifiers/registry.py). Model-health alerts go to the
data-science channel; without a webhook of its own it shares the main Slack one, posting with the channel
override ``#forewarn-data-science`` (notifiers/slack_data_science.py).
API keys: ``FOREWARN_ALERTER__API_KEYS`` holds the accepted keys as a JSON list of
``{"name", "roles", "key_sha256"}`` entries; reading alerts needs the viewer role, feedback the operator
role. In development an unset value means the documented development keys (:data:`DEV_API_KEY`,
``forewarn-dev-operator``, ...); in production the service refuses to start unless real hashed keys are
set, and outside development a notifier setting that still holds the deploy files' ``REPLACE_ME`` refuses
to load (forewarn.api_keys, shared by every service with an API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, Field

from forewarn.api_keys import DEV_API_KEY, ApiKeyOptions, ApiKeySettings

from .notifiers.base import NotifierConfig
from .notifiers.registry import NOTIFIERS, notifier_config, notifier_settings_model, setting_name
from .notifiers.slack import SlackConfig, SlackNotifier
from .notifiers.slack_data_science import DEFAULT_CHANNEL, SlackDataScienceConfig, SlackDataScienceNotifier

if TYPE_CHECKING:
    NotifierSettings = BaseModel
else:  # built from the notifier registry: one field per notifier config field, see notifiers.registry
    NotifierSettings = notifier_settings_model()

__all__ = ["DEV_API_KEY", "AlerterOptions", "AlerterSettings"]


class AlerterOptions(ApiKeyOptions, NotifierSettings):
    host: str = Field("127.0.0.1", description="Address the feedback API binds (the container image sets 0.0.0.0).")
    port: int = Field(8002, ge=1, le=65535, description="Feedback API port.")
    # api_keys (FOREWARN_ALERTER__API_KEYS) comes from ApiKeyOptions.
    policy: str = Field(
        "default", description="Alert policy file: 'default' (the shipped alert_policy.yaml) or a YAML path."
    )
    consumer_group: str = Field("forewarn-alerter", description="Kafka consumer group of the score loop.")
    batch_size: int = Field(2000, ge=1, le=100_000, description="Most scores consumed per batch.")
    poll_timeout_s: float = Field(0.05, gt=0, description="Longest wait for the first score when none is queued; "
                                                       "a batch is what is queued when it starts.")
    session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer session timeout: how soon a "
                                    "crashed replica's partitions move to another.")
    tick_interval_s: float = Field(1.0, gt=0, description="How often escalations are checked.")
    sweep_interval_s: float = Field(30.0, gt=0, description="How often the outboxes are swept for leftovers.")
    outbox_stale_s: float = Field(60.0, ge=0, description="A queued delivery this old, not in progress here, "
                                  "is re-submitted by the sweep (after a crash or a full queue).")

    # The notifiers' own fields (slack_webhook_url, pagerduty_routing_key, ...) come from NotifierSettings.
    notifier_timeout_s: float = Field(5.0, gt=0, le=120, description="Per-request timeout of every notifier.")
    delivery_max_attempts: int = Field(5, ge=1, le=50, description="Attempts per notification before alerts.dlq.")
    delivery_backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles per attempt.")
    delivery_backoff_max_s: float = Field(60.0, ge=0, description="Longest retry delay.")
    delivery_workers: int = Field(2, ge=1, le=64, description="Concurrent calls per notifier.")
    delivery_queue_size: int = Field(1000, ge=1, description="Queued notifications per notifier; beyond it they "
                                     "wait in the Redis outbox.")
    publish_timeout_s: float = Field(10.0, gt=0, description="How long Kafka may take to confirm outputs.")
    done_marker_ttl_s: int = Field(7 * 86400, ge=60, description="How long 'delivered' markers are kept.")
    alert_retention_s: int = Field(90 * 86400, ge=60, description="How long resolved alerts stay queryable.")
    shutdown_drain_s: float = Field(5.0, ge=0, description="At SIGTERM, how long queued notifications may "
                                    "still go out (the rest stay in the outbox).")
    access_log: bool = Field(False, description="Log every HTTP request.")

    def notifier_configs(self) -> dict[str, NotifierConfig]:
        """The notifiers configured by their own settings (in registry order) and their configs."""
        shared = {"timeout_s": self.notifier_timeout_s}
        configs = {name: notifier_config(name, self, shared) for name in NOTIFIERS}
        return {name: config for name, config in configs.items() if config is not None}

    def delivery_configs(self) -> dict[str, NotifierConfig]:
        """The notifiers the alerter delivers through: :meth:`notifier_configs`, plus the data-science
        channel on the main Slack webhook (with a channel override) when it has no webhook of its own."""
        configs = self.notifier_configs()
        main_slack = configs.get(SlackNotifier.name)
        if SlackDataScienceNotifier.name in configs or not isinstance(main_slack, SlackConfig):
            return configs
        channel = getattr(self, setting_name(SlackDataScienceNotifier.name, "channel")) or DEFAULT_CHANNEL
        fallback = SlackDataScienceConfig(webhook_url=main_slack.webhook_url, channel=channel,
                                          timeout_s=self.notifier_timeout_s)
        return {name: configs[name] if name in configs else fallback
                for name in NOTIFIERS if name in configs or name == SlackDataScienceNotifier.name}


class AlerterSettings(ApiKeySettings):
    api_key_section: ClassVar[str] = "alerter"
    # Every notifier setting (slack_webhook_url, pagerduty_routing_key, webhook_url, ...): the shipped prod
    # secrets hold REPLACE_ME until the deploy pipeline fills them in.
    placeholder_checked_settings: ClassVar[tuple[str, ...]] = tuple(NotifierSettings.model_fields)
    alerter: AlerterOptions = AlerterOptions()
