"""The alerter's one wiring point. ``bootstrap`` builds the real adapters from settings (tests pass
their own consumer or notifiers); ``run`` is what ``forewarn run alerter`` and the container start.

Threads: the score loop runs on the main thread (it owns the consumer and the SIGTERM handling), the
feedback API on a uvicorn thread, notifications on the dispatcher's workers.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from forewarn import kafka, topics
from forewarn.errors import UserError
from forewarn.observability import ReadinessCheck

from .api import create_app
from .dispatch import Dispatcher, RetryPolicy
from .loop import ScoreLoop
from .notifier import Notifier
from .pagerduty import PagerDutyNotifier
from .policy_file import AlertPolicyError, load_policy_book
from .publish import KafkaDeadLetters, KafkaPublisher
from .rebuild import StateRebuilder
from .service import AlertService, Topics, wall_clock_ms
from .settings import AlerterSettings
from .slack import SlackNotifier
from .store import AlertStore
from .webhook import WebhookNotifier

log = logging.getLogger("forewarn.alerter")


def readiness_check(store: AlertStore, loop: ScoreLoop) -> ReadinessCheck:
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


def build_notifiers(settings: AlerterSettings) -> dict[str, Notifier]:
    options = settings.alerter
    notifiers: dict[str, Notifier] = {}
    if (slack := options.slack()) is not None:
        notifiers["slack"] = SlackNotifier(slack)
    if (pagerduty := options.pagerduty()) is not None:
        notifiers["pagerduty"] = PagerDutyNotifier(pagerduty)
    if (webhook := options.webhook()) is not None:
        notifiers["webhook"] = WebhookNotifier(webhook)
    return notifiers


@dataclass
class Alerter:
    settings: AlerterSettings
    store: AlertStore
    publisher: KafkaPublisher
    dispatcher: Dispatcher
    service: AlertService
    loop: ScoreLoop
    app: FastAPI
    consumer: Any

    def run_loop(self, stop: threading.Event) -> None:
        """Start the dispatcher, run the score loop until ``stop``, then shut down in order."""
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
) -> Alerter:
    import redis

    try:
        policies = load_policy_book(settings.alerter.policy)
    except AlertPolicyError as exc:
        raise UserError(str(exc)) from exc
    options = settings.alerter
    names = Topics(
        scores=settings.kafka.topic(topics.RISK_SCORES), alerts=settings.kafka.topic(topics.ALERTS),
        dead_letters=settings.kafka.topic(topics.ALERTS_DLQ), feedback=settings.kafka.topic(topics.FEEDBACK),
    )
    client = redis_client or redis.Redis.from_url(settings.redis.url, decode_responses=True)
    store = AlertStore(client, settings.redis.key_prefix, alert_retention_s=options.alert_retention_s,
                       done_marker_ttl_s=options.done_marker_ttl_s)
    timeout_ms = int(options.publish_timeout_s * 1000)
    publisher = KafkaPublisher(
        kafka.producer(settings.kafka, **{"message.timeout.ms": timeout_ms, "linger.ms": 2}),
        timeout_s=options.publish_timeout_s,
    )
    notifiers = build_notifiers(settings) if notifiers is None else notifiers
    dispatcher = Dispatcher(
        notifiers, store, KafkaDeadLetters(publisher, names.dead_letters),
        retry=RetryPolicy(options.delivery_max_attempts, options.delivery_backoff_s, options.delivery_backoff_max_s),
        workers_per_notifier=options.delivery_workers, queue_size=options.delivery_queue_size,
    )
    service = AlertService(store, publisher, dispatcher, policies, names, frozenset(notifiers),
                           clock_ms=wall_clock_ms, outbox_stale_ms=int(options.outbox_stale_s * 1000))
    consumer = consumer or kafka.consumer(
        settings.kafka, options.consumer_group, **{"session.timeout.ms": options.session_timeout_ms}
    )
    rebuilder = StateRebuilder(settings.kafka, store, policies, names.alerts, wall_clock_ms)
    loop = ScoreLoop(consumer, names.scores, service, batch_size=options.batch_size,
                     poll_timeout_s=options.poll_timeout_s, tick_interval_s=options.tick_interval_s,
                     sweep_interval_s=options.sweep_interval_s, rebuilder=rebuilder)
    app = create_app(service, settings.accepted_keys(), readiness_check(store, loop))
    log.info("alerter wired", extra={"fields": {
        "notifiers": sorted(notifiers), "scores_topic": names.scores, "policy": options.policy,
        "machine_types_with_policy": sorted(policies.machine_types)}})
    return Alerter(settings, store, publisher, dispatcher, service, loop, app, consumer)


def _start_api(alerter: Alerter) -> tuple[Any, threading.Thread]:
    import uvicorn

    options = alerter.settings.alerter
    server = uvicorn.Server(uvicorn.Config(
        alerter.app, host=options.host, port=options.port, log_config=None, access_log=options.access_log,
        lifespan="off",
    ))
    thread = threading.Thread(target=server.run, name="feedback-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise UserError(
                f"the feedback API could not listen on {options.host}:{options.port} (port in use?); "
                "choose another with FOREWARN_ALERTER__PORT"
            )
        time.sleep(0.05)
    return server, thread


def run() -> None:
    from pydantic import ValidationError

    from forewarn.observability import configure_json_logging

    try:
        settings = AlerterSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise UserError(f"invalid alerter settings: {problems}") from None
    configure_json_logging(settings.log_level)
    alerter = bootstrap(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stopping: finishing the batch in progress", extra={"fields": {"signal": signum}})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server, thread = _start_api(alerter)
    log.info("alerter started", extra={"fields": {"port": settings.alerter.port}})
    try:
        alerter.run_loop(stop)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        log.info("alerter stopped")
