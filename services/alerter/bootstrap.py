"""The alerter's one wiring point. :func:`bootstrap` builds the real adapters from settings and wires the
service, the stream loop and the API over them; tests (and a stack-less run) pass their own: a consumer,
notifiers, a store, a publisher, a metrics object.

Threads: the stream loop runs on the caller's thread (it owns the consumer and the SIGTERM handling), the
feedback API on a uvicorn thread, notifications on the dispatcher's workers.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY

from forewarn import kafka, topics
from forewarn.audit import actions as audit_actions
from forewarn.errors import UserError
from forewarn.observability import ReadinessCheck

from .adapters.audit_log import TrailAuditLog
from .adapters.kafka_publisher import AlertEventPublisher, KafkaDeadLetters
from .adapters.rebuild import StateRebuilder
from .adapters.redis_store import RedisAlertStore
from .entrypoints.api import create_app
from .entrypoints.stream_loop import AlertStreamLoop, LoopTiming
from .metrics import AlerterMetrics
from .notifiers.base import Notifier
from .notifiers.dispatch import Dispatcher, RetryPolicy
from .notifiers.registry import build_notifiers
from .policy_file import AlertPolicyError, load_policy_book
from .ports import AlertRepository, EventPublisher
from .service import AlertService, OutboxTiming, Topics, wall_clock_ms
from .settings import AlerterSettings

log = logging.getLogger("forewarn.alerter")


@functools.cache
def process_metrics() -> AlerterMetrics:
    """The alerter's collectors in the process-wide registry: built on first use, once per process (an
    in-process restart, as the integration tests do, reuses them)."""
    return AlerterMetrics(REGISTRY)


def readiness_check(store: AlertRepository, loop: AlertStreamLoop) -> ReadinessCheck:
    def check() -> tuple[bool, str]:
        try:
            store.ping()
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            return False, f"redis: {exc}"
        if not loop.assigned:
            return False, "waiting for risk.scores partitions"
        if not loop.healthy:
            return False, loop.last_error
        return True, "ok"

    return check


@dataclass
class Alerter:
    settings: AlerterSettings
    store: AlertRepository
    publisher: EventPublisher
    dispatcher: Dispatcher
    service: AlertService
    loop: AlertStreamLoop
    app: FastAPI
    consumer: Any

    def run_loop(self, stop: threading.Event) -> None:
        """Start the dispatcher, run the stream loop until ``stop``, then shut down in order."""
        self.dispatcher.start()
        try:
            self.loop.run(stop)
        finally:
            self.close()

    def close(self) -> None:
        self.dispatcher.stop(self.settings.alerter.shutdown_drain_s)
        self.publisher.close()
        try:
            self.consumer.close()  # leaves the group at once, so partitions move without a session timeout
        except RuntimeError:
            pass  # already closed


def bootstrap(
    settings: AlerterSettings,
    *,
    consumer: Any = None,
    notifiers: dict[str, Notifier] | None = None,
    redis_client: Any = None,
    store: AlertRepository | None = None,
    publisher: EventPublisher | None = None,
    metrics: AlerterMetrics | None = None,
    audit: TrailAuditLog | None = None,
) -> Alerter:
    try:
        policies = load_policy_book(settings.alerter.policy)
    except AlertPolicyError as exc:
        raise UserError(str(exc)) from exc
    options = settings.alerter
    if audit is None and publisher is None:  # the real wiring (tests that inject a publisher pass their own)
        audit = TrailAuditLog(audit_actions.default_trail(settings.kafka))
    if audit is not None:
        audit.policy_in_use(settings.alerter.policy)
    metrics = metrics or process_metrics()
    names = Topics(
        scores=settings.kafka.topic(topics.RISK_SCORES), alerts=settings.kafka.topic(topics.ALERTS),
        dead_letters=settings.kafka.topic(topics.ALERTS_DLQ), feedback=settings.kafka.topic(topics.FEEDBACK),
        model_health=settings.kafka.topic(topics.MODEL_HEALTH),
    )
    if store is None:
        from forewarn.redis_client import connect

        client = redis_client or connect(settings.redis, decode_responses=True)
        store = RedisAlertStore(client, settings.redis.key_prefix, alert_retention_s=options.alert_retention_s,
                                done_marker_ttl_s=options.done_marker_ttl_s)
    if publisher is None:
        timeout_ms = int(options.publish_timeout_s * 1000)
        publisher = AlertEventPublisher(
            kafka.producer(settings.kafka, extra_config={"message.timeout.ms": timeout_ms, "linger.ms": 2}),
            timeout_s=options.publish_timeout_s,
        )
    notifiers = build_notifiers(options.delivery_configs()) if notifiers is None else notifiers
    dispatcher = Dispatcher(
        notifiers, store, KafkaDeadLetters(publisher, names.dead_letters), metrics,
        retry=RetryPolicy(options.delivery_max_attempts, options.delivery_backoff_s, options.delivery_backoff_max_s),
        workers_per_notifier=options.delivery_workers, queue_size=options.delivery_queue_size,
    )
    service = AlertService(store, publisher, dispatcher, policies, names, tuple(notifiers), metrics,
                           clock_ms=wall_clock_ms,
                           outbox=OutboxTiming(delivery_stale_ms=int(options.outbox_stale_s * 1000)), audit=audit)
    consumer = consumer or kafka.consumer(
        settings.kafka, options.consumer_group, extra_config={"session.timeout.ms": options.session_timeout_ms}
    )
    rebuilder = StateRebuilder(settings.kafka, store, policies, names.alerts, wall_clock_ms,
                               health_topic=names.model_health)
    loop = AlertStreamLoop(
        consumer, names.scores, service, metrics, rebuilder=rebuilder, health_topic=names.model_health,
        timing=LoopTiming(batch_size=options.batch_size, poll_timeout_s=options.poll_timeout_s,
                          tick_interval_s=options.tick_interval_s, sweep_interval_s=options.sweep_interval_s),
    )
    app = create_app(service, settings.access(), readiness_check(store, loop), registry=metrics.registry)
    log.info("alerter wired", extra={"fields": {
        "notifiers": sorted(notifiers), "scores_topic": names.scores, "model_health_topic": names.model_health,
        "policy": options.policy,
        "machine_types_with_policy": sorted(policies.machine_types)}})
    return Alerter(settings, store, publisher, dispatcher, service, loop, app, consumer)
