"""Wiring of the features service: the one place its real adapters are built."""

from __future__ import annotations


def build_runtime(settings=None):  # type: ignore[no-untyped-def]
    import redis

    from forewarn import kafka, topics
    from forewarn.assets import load_asset_config
    from forewarn.online_store import RedisFeatureStore
    from forewarn.services.features.app import Runtime
    from forewarn.services.features.processor import FeatureProcessor
    from forewarn.services.features.settings import FeaturesSettings
    from forewarn.services.features.snapshots import RedisSnapshots

    settings = settings or FeaturesSettings()
    opts = settings.features
    client = redis.Redis.from_url(settings.redis.url)
    source_topic = settings.kafka.topic(topics.SENSOR_READINGS)
    runtime = Runtime(
        settings=settings,
        processor=FeatureProcessor(load_asset_config(settings.asset_config), emit_interval_ms=opts.emit_interval_ms),
        producer=kafka.producer(settings.kafka, **{"linger.ms": 2}),
        store=RedisFeatureStore(client, settings.redis.key_prefix),
        snapshots=RedisSnapshots(client, settings.redis.key_prefix, opts.app_id, source_topic),
        source_topic=source_topic,
    )
    if opts.online_writer_thread:
        from forewarn.services.features.app import store_rows
        from forewarn.services.features.online_writer import OnlineWriter

        runtime.online_writer = OnlineWriter(lambda machine_type, rows: store_rows(runtime, machine_type, rows),
                                             retry_errors=(redis.RedisError,))
    return runtime


def run() -> None:
    from faust import Worker

    from forewarn.observability import configure_json_logging
    from forewarn.services.features.app import create_app

    runtime = build_runtime()
    configure_json_logging(runtime.settings.log_level)
    check_partitions(runtime)
    if runtime.online_writer is not None:
        runtime.online_writer.start()
    app = create_app(runtime)
    Worker(app, loglevel=runtime.settings.log_level.lower(), quiet=True).execute_from_commandline()


def check_partitions(runtime) -> None:  # type: ignore[no-untyped-def]
    """Vectors go to the source partition's number, so features.vectors needs at least as many."""
    from forewarn import kafka, topics
    from forewarn.errors import UserError

    kafka_settings = runtime.settings.kafka
    metadata = kafka.admin(kafka_settings).list_topics(timeout=10)
    source = metadata.topics.get(runtime.source_topic)
    vectors = metadata.topics.get(kafka_settings.topic(topics.FEATURE_VECTORS))
    if source is None or vectors is None:
        raise UserError(f"topics {runtime.source_topic} and {kafka_settings.topic(topics.FEATURE_VECTORS)} must exist; "
                        "run 'forewarn stack up' (local) or create them with the same partition count")
    if len(vectors.partitions) < len(source.partitions):
        raise UserError(f"{kafka_settings.topic(topics.FEATURE_VECTORS)} has {len(vectors.partitions)} partitions, "
                        f"fewer than {runtime.source_topic} ({len(source.partitions)}); give it as many")
