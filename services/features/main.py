"""Wiring of the features service: the one place its settings, real adapters, metrics and worker are built."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from forewarn.services.features.settings import FeaturesSettings
    from forewarn.services.features.worker import FeatureWorker


def build_worker(settings: FeaturesSettings, registry: CollectorRegistry | None = None) -> FeatureWorker:
    """The worker over Kafka and Redis. ``registry``: where its metrics go (default: prometheus_client's)."""
    import prometheus_client
    import redis

    from forewarn import kafka, topics
    from forewarn.assets import load_asset_config
    from forewarn.online_store import RedisFeatureStore
    from forewarn.redis_client import connect
    from forewarn.services.features.kafka_io import KafkaSourceReader, KafkaVectorSink
    from forewarn.services.features.metrics import FeaturesMetrics
    from forewarn.services.features.processor import FeatureProcessor
    from forewarn.services.features.snapshot_store import RedisSnapshotStore
    from forewarn.services.features.worker import FeatureWorker

    opts = settings.features
    client = connect(settings.redis)
    source_topic = settings.kafka.topic(topics.SENSOR_READINGS)
    sink = KafkaVectorSink(kafka.producer(settings.kafka, extra_config={"linger.ms": 2}),
                           vectors_topic=settings.kafka.topic(topics.FEATURE_VECTORS),
                           dlq_topic=settings.kafka.topic(topics.SENSOR_READINGS_DLQ), source_topic=source_topic)
    return FeatureWorker(
        FeatureProcessor(load_asset_config(settings.asset_config), emit_interval_ms=opts.emit_interval_ms),
        opts,
        sink=sink,
        online_store=RedisFeatureStore(client, settings.redis.key_prefix),
        snapshots=RedisSnapshotStore(client, settings.redis.key_prefix, opts.app_id, source_topic),
        source=KafkaSourceReader(settings.kafka, source_topic),
        metrics=FeaturesMetrics(registry if registry is not None else prometheus_client.REGISTRY),
        store_errors=(redis.RedisError,),
    )


def run() -> None:
    from faust import Worker

    from forewarn.observability import configure_json_logging
    from forewarn.services.features.app import create_app
    from forewarn.services.features.settings import FeaturesSettings

    settings = FeaturesSettings()
    worker = build_worker(settings)
    configure_json_logging(settings.log_level)
    check_partitions(settings)
    worker.start()
    app = create_app(worker, settings)
    Worker(app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()


def check_partitions(settings: FeaturesSettings) -> None:
    """Vectors go to the source partition's number, so features.vectors needs at least as many."""
    from forewarn import kafka, topics
    from forewarn.errors import UserError

    kafka_settings = settings.kafka
    source_topic = kafka_settings.topic(topics.SENSOR_READINGS)
    vectors_topic = kafka_settings.topic(topics.FEATURE_VECTORS)
    metadata = kafka.admin(kafka_settings).list_topics(timeout=10)
    source = metadata.topics.get(source_topic)
    vectors = metadata.topics.get(vectors_topic)
    if source is None or vectors is None:
        raise UserError(f"topics {source_topic} and {vectors_topic} must exist; "
                        "run 'forewarn stack up' (local) or create them with the same partition count")
    if len(vectors.partitions) < len(source.partitions):
        raise UserError(f"{vectors_topic} has {len(vectors.partitions)} partitions, "
                        f"fewer than {source_topic} ({len(source.partitions)}); give it as many")
