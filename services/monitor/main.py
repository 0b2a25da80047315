"""Wiring of the monitor: the one place its real adapters are built."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any


def run() -> None:
    import uvicorn
    from prometheus_client import REGISTRY

    from forewarn import kafka, topics
    from forewarn.loop_thread import start_guarded
    from forewarn.model_bundle import NoChampion, champion_version
    from forewarn.monitoring.reference import load_reference
    from forewarn.observability import configure_json_logging
    from forewarn.schemas import ModelHealthEvent
    from forewarn.services.monitor.app import create_app
    from forewarn.services.monitor.labels import DecayJudge, LabelBook, LabelStream
    from forewarn.services.monitor.metrics import MonitorMetrics
    from forewarn.services.monitor.reports import ReportLog
    from forewarn.services.monitor.sampler import LatestSampler
    from forewarn.services.monitor.service import MonitorService
    from forewarn.services.monitor.settings import MonitorSettings

    settings = MonitorSettings()
    configure_json_logging(settings.log_level)
    opts, mlflow_settings = settings.monitor, settings.mlflow

    def champion() -> str | None:
        try:
            return champion_version(mlflow_settings.tracking_uri, mlflow_settings.model_name,
                                    mlflow_settings.champion_alias)
        except NoChampion:
            return None

    def reference_of(version: str) -> Any:
        return load_reference(mlflow_settings.tracking_uri, mlflow_settings.model_name, version)

    sampler_config = {"enable.auto.commit": False, "auto.offset.reset": "latest"}
    vectors = LatestSampler(kafka.consumer(settings.kafka, group_id=f"{opts.group_id}-sampler",
                                           extra_config=sampler_config), settings.kafka.topic(topics.FEATURE_VECTORS),
                            depth=opts.blocks_per_sample)
    scores = LatestSampler(kafka.consumer(settings.kafka, group_id=f"{opts.group_id}-sampler",
                                          extra_config=sampler_config), settings.kafka.topic(topics.RISK_SCORES),
                           depth=opts.blocks_per_sample)
    producer = kafka.producer(settings.kafka)
    health_topic = settings.kafka.topic(topics.MODEL_HEALTH)

    def publish(events: list[ModelHealthEvent]) -> None:
        delivery = kafka.Delivery(producer)
        for event in events:
            key = f"{event.model_name}:{event.condition}:{event.scope}".encode()
            delivery.produce(health_topic, event.model_dump_json().encode(), key=key)
        delivery.wait(30.0, what="model-health events")

    metrics = MonitorMetrics(REGISTRY)
    book = LabelBook()
    labels = LabelStream(settings, opts.group_id, book, metrics)
    service = MonitorService(opts, metrics, model_name=mlflow_settings.model_name, champion=champion,
                             load_reference=reference_of, vectors=vectors, scores=scores, publish=publish,
                             reports=ReportLog(mlflow_settings.tracking_uri, mlflow_settings.model_name,
                                               opts.max_reports),
                             observers=[DecayJudge(book, mlflow_settings.model_name, metrics)],
                             on_champion=book.reset, score_sink=book.add_scores)
    if opts.retrain:
        from forewarn.retraining.runner import trigger_from
        from forewarn.services.monitor.retrain import RetrainCall
        from forewarn.stack.config import StackSettings

        trigger = trigger_from(settings.retrain, state_dir=StackSettings().state_dir, redis=settings.redis)
        service.after_window = RetrainCall(trigger, lambda: book.new_labels)

    @asynccontextmanager
    async def lifespan(_app):  # type: ignore[no-untyped-def]
        worker = start_guarded(service.run, service.stop, "monitor")
        label_worker = start_guarded(labels.run, labels.stop, "monitor-labels")
        yield
        service.stop.set()
        labels.stop.set()
        worker.join(timeout=30)
        label_worker.join(timeout=30)
        for sampler in (vectors, scores):
            sampler.consumer.close()
        producer.flush(10)

    def labels_summary() -> Any:
        report = book.last
        return {"new_labels": book.new_labels, "decay": report.as_dict() if report is not None else None}

    app = create_app(service, settings.access(), lifespan=lifespan, extra=labels_summary)
    uvicorn.run(app, host=opts.host, port=opts.port, log_config=None, access_log=False,
                **settings.tls.uvicorn_options())  # HTTPS when the shared TLS settings name a certificate

