"""The faust-streaming edge of the features service.

faust gives us the consumer group, partition assignment, batching and the worker lifecycle; the window
math stays in forewarn.features (faust's own windowed tables lose state on restart and rebalance, see
docs/ARCHITECTURE.md). Per batch: restore partitions seen for the first time, apply the readings, publish
the feature blocks to the source partition's number in ``features.vectors`` and wait for the broker, write
the newest vectors to Redis, and snapshot state now and then. faust acks a batch only when the agent asks
for the next one, i.e. after all of that is durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from forewarn import topics, vector_codec
from forewarn.online_store import RedisFeatureStore
from forewarn.services.features.online_writer import OnlineWriter
from forewarn.services.features.processor import BatchOutput, FeatureProcessor, SourceRecord
from forewarn.services.features.replay import read_range
from forewarn.services.features.settings import FeaturesSettings
from forewarn.services.features.snapshots import RedisSnapshots

log = logging.getLogger(__name__)

# Kafka's default message.max.bytes is 1 MB; stay well below it with the Arrow framing on top.
MAX_BLOCK_BYTES = 800_000
# A part of a batch processed at once (see split_by_bytes): ~12,000 readings of JSON, ~17 MB of features.
MAX_BATCH_BYTES = 4_000_000

READINGS = Counter("forewarn_features_readings_total", "Readings by outcome", ["outcome"])
BATCH_SECONDS = Histogram("forewarn_features_batch_seconds", "Time to process one batch end to end")
RESTORES = Counter("forewarn_features_restores_total", "Partitions restored from a snapshot")
REPLAYED = Counter("forewarn_features_replayed_total", "Readings replayed into state after a restore")
REDIS_REPAIRS = Counter("forewarn_features_redis_repairs_total",
                        "Partitions whose snapshot and online vectors were rewritten after Redis lost them")


@dataclass
class OnlineRow:
    """A vector as last written to the online store (to write it again if Redis loses it)."""

    machine_type: str
    ts: int
    row: np.ndarray
    site: str | None


@dataclass
class Runtime:
    """What the agent needs besides faust: built once in main.run(), replaced by fakes in no test."""

    settings: FeaturesSettings
    processor: FeatureProcessor
    producer: Any  # confluent_kafka.Producer
    store: RedisFeatureStore
    snapshots: RedisSnapshots
    source_topic: str
    loaded: set[int] = field(default_factory=set)
    last_snapshot: float = field(default_factory=time.monotonic)
    last_flush: float = 0.0
    last_batch_at: float = field(default_factory=time.monotonic)
    online: dict[str, OnlineRow] = field(default_factory=dict)  # machine -> what the online store holds (or will)
    online_writer: OnlineWriter | None = None  # None: online rows are written on the batch path
    snapshot_at: dict[int, float] = field(default_factory=dict)  # partition -> when it was last snapshotted


def create_app(runtime: Runtime) -> faust.App:
    settings = runtime.settings
    opts = settings.features
    brokers = ";".join(f"kafka://{b}" for b in settings.kafka.bootstrap_servers.split(","))
    app = faust.App(
        opts.app_id,
        broker=brokers,
        store="memory://",
        datadir=str(opts.datadir),
        topic_partitions=settings.kafka.topic_partitions,
        web_host=opts.host,
        web_bind=opts.host,  # faust binds 0.0.0.0 by default; we listen where settings say (loopback locally)
        web_port=opts.port,
        web_in_thread=True,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=opts.batch_max,
        # Counted in messages; envelopes hold hundreds of readings, so a few batches' worth is plenty.
        stream_buffer_maxsize=4 * opts.batch_max,
        producer_compression_type="lz4",
        # A worker killed with -9 holds its partitions until its session expires; keep that short.
        broker_session_timeout=opts.session_timeout_s,
        broker_heartbeat_interval=max(1.0, opts.session_timeout_s / 4),
    )
    source = app.topic(runtime.source_topic, value_serializer="raw", key_serializer="raw")
    batch_lock = asyncio.Lock()

    @app.agent(source)
    async def compute_features(stream: faust.StreamT) -> None:
        try:
            async for events in stream.take_events(opts.batch_max, within=opts.batch_within_s):
                started = time.perf_counter()
                records = [SourceRecord(e.message.partition, e.message.offset, e.message.value) for e in events]
                try:
                    # In a thread, so the event loop keeps fetching the next batch meanwhile: run inline,
                    # each batch would wait a fetch round trip after the previous one (a quarter of the
                    # worker's time at 25k readings/s). The lock keeps the timer and a revocation out of
                    # the state while the batch runs.
                    async with batch_lock:
                        await finish_in_thread(handle_batch, runtime, records)
                except Exception:
                    # faust would ack this batch while unwinding, and a later commit would skip it. Die
                    # like kill -9 instead: no ack, no snapshot; the restart replays from the last snapshot.
                    log.exception("batch failed; exiting so the worker restarts and replays it")
                    logging.shutdown()
                    os._exit(70)
                BATCH_SECONDS.observe(time.perf_counter() - started)
        finally:
            # Graceful stop (SIGTERM) or revocation: the newest vectors to Redis, and a fresh snapshot so
            # the next owner replays little.
            flush_online(runtime)
            drain_online(runtime)
            checkpoint(runtime, list(runtime.loaded))

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set, **_: Any) -> None:
        mine = [tp.partition for tp in revoked if tp.topic == runtime.source_topic]
        async with batch_lock:  # the batch in flight finishes first
            release_partitions(runtime, mine)

    @app.timer(interval=1.0)
    async def watch_redis() -> None:
        # Between batches, so an idle stream also notices a Redis that came back empty, and the last
        # vectors before a pause reach the online store.
        if batch_lock.locked():
            return  # a batch is running: it repairs and flushes itself
        repair_redis(runtime)
        flush_online_when_due(runtime, time.monotonic())

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = not app.rebalancing
        reason = "rebalancing" if not ready else f"serving partitions {sorted(runtime.loaded)}"
        return web.json({"ready": ready, "reason": reason}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus text is ASCII anyway.
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split("; charset")[0])

    return app


async def finish_in_thread(function: Any, *args: Any) -> Any:
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


def release_partitions(runtime: Runtime, partitions: list[int]) -> None:
    """Partitions revoked: the newest vectors to Redis, a last snapshot, then forget their machines."""
    flush_online(runtime)
    drain_online(runtime)  # the next owner reads what the store holds for its machines
    checkpoint(runtime, [p for p in partitions if p in runtime.loaded])
    for partition in partitions:
        machines = runtime.processor.machines_of.get(partition, {})
        if runtime.online_writer is not None:
            runtime.online_writer.discard(set(machines))  # only if the drain above timed out
        for machine_id in machines:
            runtime.online.pop(machine_id, None)
        runtime.processor.forget(partition)
        runtime.loaded.discard(partition)


def handle_batch(runtime: Runtime, records: list[SourceRecord]) -> BatchOutput:
    """Everything one batch needs, synchronously: when this returns, its effects are durable."""
    for partition in sorted({r.partition for r in records} - runtime.loaded):
        first = min(r.offset for r in records if r.partition == partition)
        restore(runtime, partition, first)
    output = BatchOutput()
    for part in split_by_bytes(records, MAX_BATCH_BYTES):
        done = runtime.processor.process(part)
        publish(runtime, done)
        output.rejected += done.rejected
        output.accepted += done.accepted
        output.late += done.late
        output.duplicates += done.duplicates
        output.skipped_replayed += done.skipped_replayed
    repair_redis(runtime)
    now = time.monotonic()
    flush_online_when_due(runtime, now)
    snapshot_step(runtime, now)
    runtime.last_batch_at = now
    READINGS.labels("accepted").inc(output.accepted)
    READINGS.labels("late").inc(output.late)
    READINGS.labels("duplicate").inc(output.duplicates)
    READINGS.labels("rejected").inc(len(output.rejected))
    READINGS.labels("replayed_skip").inc(output.skipped_replayed)
    return output


def split_by_bytes(records: list[SourceRecord], max_bytes: int) -> list[list[SourceRecord]]:
    """Consecutive runs of records of at most ``max_bytes`` of values each (a record larger alone is a run).

    A batch is counted in messages, and an envelope holds from one reading to thousands: after a stall a
    batch can hold a hundred full envelopes. Processing it in parts keeps the worker's memory (decoded
    readings, feature matrices) bounded by the part, not by the backlog."""
    parts: list[list[SourceRecord]] = []
    size = 0
    for record in records:
        if not parts or (size + len(record.value) > max_bytes and parts[-1]):
            parts.append([])
            size = 0
        parts[-1].append(record)
        size += len(record.value)
    return parts


def snapshot_step(runtime: Runtime, now: float) -> None:
    """Snapshot one partition, the one whose snapshot is oldest, every interval / partitions seconds. A
    snapshot blocks its batch (tens of ms per thousand machines), so spreading the partitions evenly over
    the interval keeps that out of the latency tail; each partition is still snapshotted once an interval."""
    loaded = sorted(runtime.loaded)
    if not loaded or now - runtime.last_snapshot < runtime.settings.features.snapshot_interval_s / len(loaded):
        return
    partition = min(loaded, key=lambda p: runtime.snapshot_at.get(p, 0.0))
    checkpoint(runtime, [partition])
    runtime.snapshot_at[partition] = now


def restore(runtime: Runtime, partition: int, first_offset: int) -> None:
    applied, states = runtime.snapshots.load(partition)
    runtime.processor.restore(partition, applied, states)
    RESTORES.inc()
    replayed = 0
    if first_offset > applied + 1:
        # faust resumes at its committed offset; readings between the snapshot and it only rebuild state.
        for batch in read_range(runtime.settings.kafka, runtime.source_topic, partition, applied + 1, first_offset):
            runtime.processor.process(batch, emit=False)
            replayed += len(batch)
    REPLAYED.inc(replayed)
    # Every loaded partition has a complete snapshot in Redis from now on, so a missing one can only mean
    # Redis lost it (see repair_redis). It also spares the next owner this replay.
    applied, states = runtime.processor.snapshot(partition, only_dirty=False)
    runtime.snapshots.save(partition, applied, states)
    runtime.processor.mark_clean(partition)
    remember_stored(runtime, partition)
    runtime.loaded.add(partition)
    log.info("partition restored", extra={"fields": {"partition": partition, "snapshot_offset": applied,
                                                    "resume_offset": first_offset, "replayed": replayed}})


def publish(runtime: Runtime, output: BatchOutput) -> None:
    vectors_topic = runtime.settings.kafka.topic(topics.FEATURE_VECTORS)
    dlq_topic = runtime.settings.kafka.topic(topics.SENSOR_READINGS_DLQ)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = runtime.producer
    for partition, blocks in output.blocks.items():
        for block in blocks:
            for part in vector_codec.split(block, MAX_BLOCK_BYTES):
                producer.produce(vectors_topic, value=vector_codec.encode(part), partition=partition,
                                 headers={"content-type": vector_codec.CONTENT_TYPE}, on_delivery=on_delivery)
    for rejected in output.rejected:
        producer.produce(
            dlq_topic,
            value=rejected.record.value,
            headers={"reason": rejected.reason, "source": f"{runtime.source_topic}/{rejected.record.partition}/"
                                                        f"{rejected.record.offset}", "stage": "features"},
            on_delivery=on_delivery,
        )
    if producer.flush(30) or errors:
        raise RuntimeError(f"feature vectors not delivered ({errors[:3]}); stopping before the batch is acked")


def flush_online_when_due(runtime: Runtime, now: float) -> None:
    """The online store is written at most every ``online_flush_s``: a write costs about the same for a
    batch of one reading per machine as for one of ten, so at high rates writing after every batch would
    spend the stream's time on Redis (the vectors themselves go to Kafka at once)."""
    if runtime.processor.latest and now - runtime.last_flush >= runtime.settings.features.online_flush_s:
        flush_online(runtime)
        runtime.last_flush = now


def flush_online(runtime: Runtime) -> None:
    """Newest vector per machine to Redis: handed to the online writer's thread when there is one. A Redis
    outage must not stall the stream: rows are kept and retried."""
    import redis

    grouped = runtime.processor.take_latest()
    by_type = {
        # A copy: ``latest.row`` is a view into its whole batch's matrix, and a machine that goes quiet
        # would keep that matrix (megabytes) alive for as long as this worker holds the machine.
        machine_type: {machine_id: OnlineRow(machine_type, latest.ts, latest.row.copy(), latest.site)
                       for machine_id, latest in items}
        for machine_type, items in grouped.items()
    }
    if runtime.online_writer is not None:
        for rows in by_type.values():
            runtime.online.update(rows)
        runtime.online_writer.submit(by_type)
        return
    try:
        for machine_type, rows in by_type.items():
            write_online(runtime, machine_type, rows)
    except redis.RedisError as exc:
        log.warning("online store write failed (%s); retrying with the next batch", exc)
        for items in grouped.values():
            for machine_id, latest in items:
                runtime.processor.latest.setdefault(machine_id, latest)


def drain_online(runtime: Runtime, timeout_s: float = 10.0) -> None:
    if runtime.online_writer is not None and not runtime.online_writer.drain(timeout_s):
        log.warning("online store writes still pending after %.0f s (Redis unreachable?); going on", timeout_s)


def write_online(runtime: Runtime, machine_type: str, rows: dict[str, OnlineRow]) -> None:
    store_rows(runtime, machine_type, rows)
    runtime.online.update(rows)


def store_rows(runtime: Runtime, machine_type: str, rows: dict[str, OnlineRow]) -> None:
    """One machine type's rows to the online store (from the batch path or the online writer's thread)."""
    if not rows:
        return
    runtime.store.write_rows(
        machine_type=machine_type,
        feature_set_version=_version(),
        names=runtime.processor.engines[machine_type].feature_names,
        machine_ids=list(rows),
        ts=[r.ts for r in rows.values()],
        matrix=np.vstack([r.row for r in rows.values()]),
        sites=[r.site for r in rows.values()],
    )


def remember_stored(runtime: Runtime, partition: int) -> None:
    """What the online store holds for a partition's machines as this worker takes it over: the vectors
    it must write again if Redis loses them before those machines report again."""
    from forewarn.online_store import names_id

    machines = runtime.processor.machines_of.get(partition, {})
    refs = {t: names_id(e.feature_names) for t, e in runtime.processor.engines.items()}
    for machine_id, stored in runtime.store.read_packed(list(machines)).items():
        if refs.get(stored.machine_type) == stored.names_ref and stored.feature_set_version == _version():
            runtime.online.setdefault(machine_id, OnlineRow(stored.machine_type, stored.ts, stored.values,
                                                            stored.site))


def repair_redis(runtime: Runtime, partitions: list[int] | None = None) -> set[int]:
    """Redis restarted empty (or lost keys) while this worker kept its state in memory: rewrite what it
    had put there. Every loaded partition has a snapshot hash from its restore on (see restore), so a
    missing one means Redis lost it: write its machines' online vectors again, then a full snapshot (the
    snapshot goes last: it is the marker, so an interrupted repair is retried). Returns the partitions
    repaired; a Redis error is logged and retried at the next batch or tick."""
    import redis

    wanted = sorted(runtime.loaded if partitions is None else set(partitions) & runtime.loaded)
    if not wanted:
        return set()
    repaired: set[int] = set()
    try:
        pipe = runtime.snapshots.client.pipeline(transaction=False)
        for partition in wanted:
            pipe.exists(runtime.snapshots.key(partition))
        lost = [p for p, present in zip(wanted, pipe.execute(), strict=True) if not present]
        for partition in lost:
            by_type: dict[str, dict[str, OnlineRow]] = {}
            for machine_id in runtime.processor.machines_of.get(partition, {}):
                if machine_id in runtime.online:
                    row = runtime.online[machine_id]
                    by_type.setdefault(row.machine_type, {})[machine_id] = row
            for machine_type, rows in by_type.items():
                write_online(runtime, machine_type, rows)
            applied, states = runtime.processor.snapshot(partition, only_dirty=False)
            runtime.snapshots.save(partition, applied, states)
            runtime.processor.mark_clean(partition)
            repaired.add(partition)
            REDIS_REPAIRS.inc()
            log.warning("Redis lost this partition's snapshot and online vectors; rewrote them",
                        extra={"fields": {"partition": partition, "snapshot_offset": applied,
                                          "online_vectors": sum(len(r) for r in by_type.values())}})
    except redis.RedisError as exc:
        log.warning("checking Redis for lost state failed (%s); retrying later", exc)
    return repaired


def checkpoint(runtime: Runtime, partitions: list[int]) -> None:
    import redis

    # A dirty-only snapshot on top of a lost one would restore the other machines as new: repair first.
    partitions = [p for p in partitions if p not in repair_redis(runtime, partitions)]
    try:
        for partition in partitions:
            applied, states = runtime.processor.snapshot(partition)
            if states or applied >= 0:
                runtime.snapshots.save(partition, applied, states)
            runtime.processor.mark_clean(partition)
        runtime.last_snapshot = time.monotonic()
    except redis.RedisError as exc:
        log.warning("snapshot failed (%s); state stays recoverable by replay, retrying later", exc)


def _version() -> str:
    from forewarn.features import FEATURE_SET_VERSION

    return FEATURE_SET_VERSION
