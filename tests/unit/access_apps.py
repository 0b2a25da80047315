"""Every service's HTTP app, built with development settings (the documented dev keys) and in-memory fakes,
for the tests that walk all routes (test_access_routes.py, test_access_schemathesis.py). A service that
gets an HTTP app gets a builder here; the route walk fails for a service whose routes it does not know."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from forewarn.alerting.changes import ScoreInput
from forewarn.alerting.policy import Alert, Policy, PolicyBook
from forewarn.schemas import FeatureVector, ModelHealthEvent, RiskScore

T0 = 1_767_225_600_000


@dataclass
class RecordedAudit:
    """The alerter's audit port, recording who did what (the real one is the hash-chained trail)."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)

    def operator_action(self, alert: Alert, kind: str, actor: str, details: dict[str, object]) -> None:
        self.actions.append((alert.id, kind, actor))


def ingest_app() -> FastAPI:
    from forewarn.services.ingest.app import create_app
    from forewarn.services.ingest.publisher import InMemoryPublisher
    from forewarn.services.ingest.settings import IngestOptions, IngestSettings

    settings = IngestSettings(environment="development", ingest=IngestOptions(max_readings_per_request=200))
    return create_app(settings, InMemoryPublisher())


def alerter_app(audit: RecordedAudit | None = None) -> tuple[FastAPI, str]:
    """The feedback API over an in-memory alerter holding one triggered alert (its id is returned too)."""
    from forewarn.services.alerter.adapters.memory import (
        InMemoryAlertStore,
        InMemoryDeliveryQueue,
        InMemoryPublisher,
    )
    from forewarn.services.alerter.entrypoints.api import create_app
    from forewarn.services.alerter.metrics import AlerterMetrics
    from forewarn.services.alerter.service import AlertService, Topics
    from forewarn.services.alerter.settings import AlerterSettings

    topics = Topics(scores="risk.scores", alerts="alerts", dead_letters="alerts.dlq", feedback="feedback")
    service = AlertService(InMemoryAlertStore(), InMemoryPublisher(), InMemoryDeliveryQueue(),
                           PolicyBook(defaults=Policy(enter_p=0.8, exit_p=0.5, min_consecutive=3)), topics, (),
                           AlerterMetrics(CollectorRegistry()), clock_ms=lambda: T0 + 60_000,
                           audit=audit or RecordedAudit())
    service.handle_scores([ScoreInput("risk.scores:0", i, RiskScore(
        machine_id="m1", machine_type="pump", ts=T0 + i * 1000, p_failure=0.9, model_name="m",
        model_version="4")) for i in range(3)])
    (alert_id,) = {alert.id for alert in service.list_alerts()}
    app = create_app(service, AlerterSettings(environment="development").access(), lambda: (True, "ok"),
                     registry=CollectorRegistry())
    return app, alert_id


def scorer_app() -> FastAPI:
    """The scoring API with a small LightGBM champion loaded and one machine in the online store."""
    from tests.unit.test_scorer import FakeStore, _bundle, _vector

    from forewarn.services.scorer.app import create_app
    from forewarn.services.scorer.model_watch import ModelHolder
    from forewarn.services.scorer.settings import ScorerSettings

    holder = ModelHolder(lambda: "7", _bundle)
    holder.refresh()
    store = FakeStore({"a": FeatureVector.model_validate(_vector("a", 3.0))})
    return create_app(holder, store, ScorerSettings(environment="development").access())


def monitor_app() -> FastAPI:
    """The monitor's API after two closed windows (of a champion without a reference: building one takes
    seconds, and the API only reads what the service holds)."""
    from tests.unit.test_monitor_service import Clock, Source

    from forewarn.services.monitor.app import create_app
    from forewarn.services.monitor.metrics import MonitorMetrics
    from forewarn.services.monitor.service import MonitorService
    from forewarn.services.monitor.settings import MonitorOptions, MonitorSettings

    published: list[list[ModelHealthEvent]] = []
    scores, clock = Source(), Clock()
    scores.kind = "scores"
    service = MonitorService(MonitorOptions(window_s=10, rows_per_block=50), MonitorMetrics(CollectorRegistry()),
                             model_name="m", champion=lambda: "4", load_reference=lambda _version: None,
                             vectors=Source(), scores=scores, publish=published.append,
                             clock=clock)  # type: ignore[arg-type]
    for _ in range(21):
        service.step()
        clock.now += 1.0
    return create_app(service, MonitorSettings(environment="development").access(),
                      extra=lambda: {"new_labels": 0, "decay": None})


def fastapi_apps() -> dict[str, FastAPI]:
    return {"ingest": ingest_app(), "alerter": alerter_app()[0], "scorer": scorer_app(), "monitor": monitor_app()}


def features_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the features service's web server serves, its built-in views included."""
    from tests.unit.test_features_worker import Ports, make_topic

    from forewarn.services.features.app import create_app
    from forewarn.services.features.settings import FeaturesSettings

    app: Any = create_app(Ports(make_topic(2)).worker(), FeaturesSettings(environment="development"))
    app.web.init_server()  # what the worker does at start: mounts faust's own blueprints beside our pages
    return {(route.method, route.resource.canonical) for route in app.web.web_app.router.routes()
            if route.method != "HEAD"}
