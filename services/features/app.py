"""The faust-streaming edge of the features service: wiring only, the work is FeatureWorker's (worker.py).

faust gives us the consumer group, partition assignment, batching and the worker lifecycle; the window
math stays in forewarn.features (faust's own windowed tables lose state on restart and rebalance, see
docs/ARCHITECTURE.md). faust acks a batch only when the agent asks for the next one, i.e. after
FeatureWorker.handle_batch returned and its effects are durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from forewarn import kafka, topics
from forewarn.services.features.processor import SourceRecord
from forewarn.services.features.settings import FeaturesSettings
from forewarn.services.features.worker import FeatureWorker

log = logging.getLogger(__name__)

T = TypeVar("T")


def create_app(worker: FeatureWorker, settings: FeaturesSettings) -> faust.App:
    opts = settings.features
    source_topic = settings.kafka.topic(topics.SENSOR_READINGS)
    app = faust.App(
        opts.app_id,
        **kafka.faust_options(settings.kafka),  # broker and, when secured, its credentials: forewarn.kafka
        store="memory://",
        datadir=str(opts.datadir),
        topic_partitions=settings.kafka.topic_partitions,
        web_host=opts.host,
        web_bind=opts.host,  # faust binds 0.0.0.0 by default; we listen where settings say (loopback locally)
        web_port=opts.port,
        web_in_thread=True,
        web_ssl_context=settings.tls.server_context(),  # HTTPS when the shared TLS settings name a certificate
        # faust's built-in /router and /table views answer anyone with partition assignments and table
        # keys; this port serves only the open operations pages (probes, Prometheus) and "/" ({"status": "OK"}).
        web_router_enabled=False,
        web_tables_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=opts.batch_max,
        # Counted in messages; envelopes hold hundreds of readings, so a few batches' worth is plenty.
        stream_buffer_maxsize=4 * opts.batch_max,
        producer_compression_type="lz4",
        # A worker killed with -9 holds its partitions until its session expires; keep that short.
        broker_session_timeout=opts.session_timeout_s,
        broker_heartbeat_interval=max(1.0, opts.session_timeout_s / 4),
    )
    source = app.topic(source_topic, value_serializer="raw", key_serializer="raw")
    batch_lock = asyncio.Lock()

    @app.agent(source)
    async def compute_features(stream: faust.StreamT) -> None:
        batches = cast(faust.Stream, stream).take_events  # faust passes a Stream; StreamT's type lacks this
        try:
            async for events in batches(opts.batch_max, within=opts.batch_within_s):
                started = time.perf_counter()
                records = [SourceRecord(e.message.partition, e.message.offset, e.message.value) for e in events]
                try:
                    # In a thread, so the event loop keeps fetching the next batch meanwhile: run inline,
                    # each batch would wait a fetch round trip after the previous one (a quarter of the
                    # worker's time at 25k readings/s). The lock keeps the timer and a revocation out of
                    # the state while the batch runs.
                    async with batch_lock:
                        await finish_in_thread(worker.handle_batch, records)
                except Exception:
                    # faust would ack this batch while unwinding, and a later commit would skip it. Die
                    # like kill -9 instead: no ack, no snapshot; the restart replays from the last snapshot.
                    log.exception("batch failed; exiting so the worker restarts and replays it")
                    logging.shutdown()
                    os._exit(70)
                worker.metrics.batch_seconds.observe(time.perf_counter() - started)
        finally:
            # Graceful stop (SIGTERM) or revocation: the newest vectors to Redis, and a fresh snapshot so
            # the next owner replays little.
            worker.write_out()

    # mode types a handler as (sender, *args, **kwargs); faust sends the revoked partitions positionally.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        mine = [tp.partition for tp in revoked if tp.topic == source_topic]
        async with batch_lock:  # the batch in flight finishes first
            worker.release_partitions(mine)

    @app.timer(interval=1.0)
    async def watch_redis() -> None:
        if batch_lock.locked():
            return  # a batch is running: it repairs and flushes itself
        worker.tick()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = not app.rebalancing
        reason = "rebalancing" if not ready else f"serving partitions {sorted(worker.loaded)}"
        return web.json({"ready": ready, "reason": reason}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus text is ASCII anyway.
        return web.bytes(generate_latest(worker.metrics.registry),
                         content_type=CONTENT_TYPE_LATEST.split("; charset")[0])

    return app


async def finish_in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in a worker thread and return its result. A cancellation (stop, revocation) waits
    for it to finish instead of leaving it running beside whatever the cancelled code does next (a
    checkpoint must never see half a batch)."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if task.exception() is not None:
            raise task.exception() from None  # type: ignore[misc]
        raise
