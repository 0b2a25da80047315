"""Wiring of the scorer: the one place its real adapters are built."""

from __future__ import annotations

from contextlib import asynccontextmanager


def run() -> None:
    import uvicorn
    from prometheus_client import REGISTRY

    from forewarn.loop_thread import start_guarded
    from forewarn.observability import configure_json_logging
    from forewarn.online_store import RedisFeatureStore
    from forewarn.redis_client import connect
    from forewarn.services.scorer.app import create_app
    from forewarn.services.scorer.loop import ScoreLoop
    from forewarn.services.scorer.metrics import ScorerMetrics
    from forewarn.services.scorer.model_watch import ModelHolder
    from forewarn.services.scorer.settings import ScorerSettings

    settings = ScorerSettings()
    configure_json_logging(settings.log_level)
    opts = settings.scorer
    holder = ModelHolder.from_registry(
        settings.mlflow.tracking_uri, settings.mlflow.model_name, settings.mlflow.champion_alias, opts.num_threads,
        compile_model=opts.compile_model, compile_cache_dir=opts.compile_cache_dir,
    )
    store = RedisFeatureStore(connect(settings.redis), settings.redis.key_prefix)
    metrics = ScorerMetrics(REGISTRY)
    metrics.ready.set_function(lambda: float(holder.current is not None))  # read at scrape time, never stale
    loop = ScoreLoop(settings, holder, metrics)

    @asynccontextmanager
    async def lifespan(_app):  # type: ignore[no-untyped-def]
        holder.refresh()
        watcher = holder.watch(loop.stop, opts.model_poll_s)
        worker = start_guarded(loop.run, loop.stop, "score-loop")
        yield
        # SIGTERM: uvicorn stops serving, then we finish the batch in hand and commit it.
        loop.stop.set()
        worker.join(timeout=60)
        watcher.join(timeout=5)

    app = create_app(holder, store, settings.access(), top_k=opts.top_k, lifespan=lifespan)
    uvicorn.run(app, host=opts.host, port=opts.port, log_config=None, access_log=False,
                **settings.tls.uvicorn_options())  # HTTPS when the shared TLS settings name a certificate

