"""The features worker: one consumer's state and the rules that keep it exactly-once across crashes.

Per batch: restore partitions seen for the first time (snapshot, then a replay of the readings between the
snapshot and the batch), apply the readings, publish the feature blocks and wait until they are durable,
hand the newest vectors to the online store, and snapshot state now and then. The batch is acked only
after all of that returned (by faust, see app.py), so a crash at any point replays, never skips.

Between batches the worker notices a Redis that came back empty (``repair_redis``) and, on revocation or
stop, writes out what it holds before forgetting it. Everything outside goes through the Protocols in
ports.py, so this runs the same under faust and in the unit tests' fakes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from forewarn.features import FEATURE_SET_VERSION
from forewarn.online_store import names_id
from forewarn.services.features.metrics import FeaturesMetrics
from forewarn.services.features.online_writer import OnlineWriter
from forewarn.services.features.ports import OnlineStore, SnapshotStore, SourceReader, VectorSink
from forewarn.services.features.processor import BatchOutput, FeatureProcessor, SourceRecord
from forewarn.services.features.settings import FeaturesOptions

log = logging.getLogger(__name__)

# A part of a batch processed at once (see split_by_bytes): ~12,000 readings of JSON, ~17 MB of features.
MAX_BATCH_BYTES = 4_000_000


@dataclass
class OnlineRow:
    """A vector as last written to the online store (to write it again if Redis loses it)."""

    machine_type: str
    ts: int
    row: np.ndarray
    site: str | None


class FeatureWorker:
    """What one features consumer holds besides its Kafka consumer, and what it does with it.

    ``store_errors`` are the exceptions of an unreachable online or snapshot store (redis.RedisError for
    the Redis ones): those are logged and retried later, never allowed to stall the stream."""

    def __init__(self, processor: FeatureProcessor, options: FeaturesOptions, *, sink: VectorSink,
                 online_store: OnlineStore, snapshots: SnapshotStore, source: SourceReader,
                 metrics: FeaturesMetrics, store_errors: tuple[type[Exception], ...],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.processor = processor
        self.options = options
        self.sink = sink
        self.online_store = online_store
        self.snapshots = snapshots
        self.source = source
        self.metrics = metrics
        self.store_errors = store_errors
        self.clock = clock
        self.loaded: set[int] = set()  # partitions restored and served by this worker
        self.last_snapshot = clock()
        self.last_flush = 0.0
        self.online: dict[str, OnlineRow] = {}  # machine -> what the online store holds (or will)
        self.snapshot_at: dict[int, float] = {}  # partition -> when it was last snapshotted
        # None: online rows are written on the batch path
        self.online_writer = (OnlineWriter(self.store_rows, retry_errors=store_errors)
                              if options.online_writer_thread else None)

    def start(self) -> None:
        """Start the online writer's thread (if any); before the first batch."""
        if self.online_writer is not None:
            self.online_writer.start()

    # -- batches ---------------------------------------------------------------------------------------

    def handle_batch(self, records: list[SourceRecord]) -> BatchOutput:
        """Everything one batch needs, synchronously: when this returns, its effects are durable."""
        for partition in sorted({r.partition for r in records} - self.loaded):
            first = min(r.offset for r in records if r.partition == partition)
            self.restore(partition, first)
        output = BatchOutput()
        for part in split_by_bytes(records, MAX_BATCH_BYTES):
            done = self.processor.process(part)
            self.sink.publish(done)
            output.rejected += done.rejected
            output.accepted += done.accepted
            output.late += done.late
            output.duplicates += done.duplicates
            output.skipped_replayed += done.skipped_replayed
        self.repair_redis()
        now = self.clock()
        self.flush_online_when_due(now)
        self.snapshot_step(now)
        readings = self.metrics.readings
        readings.labels("accepted").inc(output.accepted)
        readings.labels("late").inc(output.late)
        readings.labels("duplicate").inc(output.duplicates)
        readings.labels("rejected").inc(len(output.rejected))
        readings.labels("replayed_skip").inc(output.skipped_replayed)
        return output

    def tick(self) -> None:
        """Between batches, so an idle stream also notices a Redis that came back empty, and the last
        vectors before a pause reach the online store."""
        self.repair_redis()
        self.flush_online_when_due(self.clock())

    def restore(self, partition: int, first_offset: int) -> None:
        applied, states = self.snapshots.load(partition)
        self.processor.restore(partition, applied, states)
        self.metrics.restores.inc()
        replayed = 0
        if first_offset > applied + 1:
            # The consumer resumes at its committed offset; readings between the snapshot and it were
            # processed before (their vectors are out), so they only rebuild state.
            for batch in self.source.read(partition, applied + 1, first_offset):
                self.processor.process(batch, emit=False)
                replayed += len(batch)
        self.metrics.replayed.inc(replayed)
        # Every loaded partition has a complete snapshot from now on, so a missing one can only mean the
        # store lost it (see repair_redis). It also spares the next owner this replay.
        applied, states = self.processor.snapshot(partition, only_dirty=False)
        self.snapshots.save(partition, applied, states)
        self.processor.mark_clean(partition)
        self.remember_stored(partition)
        self.loaded.add(partition)
        log.info("partition restored", extra={"fields": {"partition": partition, "snapshot_offset": applied,
                                                        "resume_offset": first_offset, "replayed": replayed}})

    # -- the online store ------------------------------------------------------------------------------

    def flush_online_when_due(self, now: float) -> None:
        """The online store is written at most every ``online_flush_s``: a write costs about the same for
        a batch of one reading per machine as for one of ten, so at high rates writing after every batch
        would spend the stream's time on Redis (the vectors themselves go to Kafka at once)."""
        if self.processor.latest and now - self.last_flush >= self.options.online_flush_s:
            self.flush_online()
            self.last_flush = now

    def flush_online(self) -> None:
        """Newest vector per machine to the online store: handed to the online writer's thread when there
        is one. An outage must not stall the stream: rows are kept and retried."""
        grouped = self.processor.take_latest()
        by_type = {
            # A copy: ``latest.row`` is a view into its whole batch's matrix, and a machine that goes quiet
            # would keep that matrix (megabytes) alive for as long as this worker holds the machine.
            machine_type: {machine_id: OnlineRow(machine_type, latest.ts, latest.row.copy(), latest.site)
                           for machine_id, latest in items}
            for machine_type, items in grouped.items()
        }
        if self.online_writer is not None:
            for rows in by_type.values():
                self.online.update(rows)
            self.online_writer.submit(by_type)
            return
        try:
            for machine_type, rows in by_type.items():
                self._write_online(machine_type, rows)
        except self.store_errors as exc:
            log.warning("online store write failed (%s); retrying with the next batch", exc)
            for items in grouped.values():
                for machine_id, latest in items:
                    self.processor.latest.setdefault(machine_id, latest)  # a newer one since wins

    def drain_online(self, timeout_s: float = 10.0) -> None:
        if self.online_writer is not None and not self.online_writer.drain(timeout_s):
            log.warning("online store writes still pending after %.0f s (Redis unreachable?); going on", timeout_s)

    def _write_online(self, machine_type: str, rows: dict[str, OnlineRow]) -> None:
        self.store_rows(machine_type, rows)
        self.online.update(rows)

    def store_rows(self, machine_type: str, rows: dict[str, OnlineRow]) -> None:
        """One machine type's rows to the online store (from the batch path or the online writer's thread)."""
        if not rows:
            return
        self.online_store.write_rows(
            machine_type=machine_type,
            feature_set_version=FEATURE_SET_VERSION,
            names=self.processor.engines[machine_type].feature_names,
            machine_ids=list(rows),
            ts=[r.ts for r in rows.values()],
            matrix=np.vstack([r.row for r in rows.values()]),
            sites=[r.site for r in rows.values()],
        )

    def remember_stored(self, partition: int) -> None:
        """What the online store holds for a partition's machines as this worker takes it over: the vectors
        it must write again if Redis loses them before those machines report again."""
        machines = self.processor.machines_of.get(partition, {})
        refs = {t: names_id(e.feature_names) for t, e in self.processor.engines.items()}
        for machine_id, stored in self.online_store.read_packed(list(machines)).items():
            if refs.get(stored.machine_type) == stored.names_ref and stored.feature_set_version == FEATURE_SET_VERSION:
                self.online.setdefault(machine_id, OnlineRow(stored.machine_type, stored.ts, stored.values,
                                                             stored.site))

    # -- snapshots and repair --------------------------------------------------------------------------

    def snapshot_step(self, now: float) -> None:
        """Snapshot one partition, the one whose snapshot is oldest, every interval / partitions seconds. A
        snapshot blocks its batch (tens of ms per thousand machines), so spreading the partitions evenly
        over the interval keeps that out of the latency tail; each is still snapshotted once an interval."""
        loaded = sorted(self.loaded)
        if not loaded or now - self.last_snapshot < self.options.snapshot_interval_s / len(loaded):
            return
        partition = min(loaded, key=lambda p: self.snapshot_at.get(p, 0.0))
        self.checkpoint([partition])
        self.snapshot_at[partition] = now

    def checkpoint(self, partitions: list[int]) -> None:
        # A dirty-only snapshot on top of a lost one would restore the other machines as new: repair first.
        partitions = [p for p in partitions if p not in self.repair_redis(partitions)]
        try:
            for partition in partitions:
                applied, states = self.processor.snapshot(partition)
                if states or applied >= 0:
                    self.snapshots.save(partition, applied, states)
                self.processor.mark_clean(partition)
            self.last_snapshot = self.clock()
        except self.store_errors as exc:
            log.warning("snapshot failed (%s); state stays recoverable by replay, retrying later", exc)

    def repair_redis(self, partitions: list[int] | None = None) -> set[int]:
        """Redis restarted empty (or lost keys) while this worker kept its state in memory: rewrite what it
        had put there. Every loaded partition has a snapshot from its restore on (see restore), so a
        missing one means Redis lost it: write its machines' online vectors again, then a full snapshot
        (the snapshot goes last: it is the marker, so an interrupted repair is retried). Returns the
        partitions repaired; a store error is logged and retried at the next batch or tick."""
        wanted = sorted(self.loaded if partitions is None else set(partitions) & self.loaded)
        if not wanted:
            return set()
        repaired: set[int] = set()
        try:
            lost = sorted(self.snapshots.missing(wanted))
            for partition in lost:
                by_type: dict[str, dict[str, OnlineRow]] = {}
                for machine_id in self.processor.machines_of.get(partition, {}):
                    if machine_id in self.online:
                        row = self.online[machine_id]
                        by_type.setdefault(row.machine_type, {})[machine_id] = row
                for machine_type, rows in by_type.items():
                    self._write_online(machine_type, rows)
                applied, states = self.processor.snapshot(partition, only_dirty=False)
                self.snapshots.save(partition, applied, states)
                self.processor.mark_clean(partition)
                repaired.add(partition)
                self.metrics.redis_repairs.inc()
                log.warning("Redis lost this partition's snapshot and online vectors; rewrote them",
                            extra={"fields": {"partition": partition, "snapshot_offset": applied,
                                              "online_vectors": sum(len(r) for r in by_type.values())}})
        except self.store_errors as exc:
            log.warning("checking Redis for lost state failed (%s); retrying later", exc)
        return repaired

    # -- handing partitions over -----------------------------------------------------------------------

    def release_partitions(self, partitions: list[int]) -> None:
        """Partitions revoked: the newest vectors to the online store, a last snapshot, then forget them."""
        self.flush_online()
        self.drain_online()  # the next owner reads what the store holds for its machines
        self.checkpoint([p for p in partitions if p in self.loaded])
        for partition in partitions:
            machines = self.processor.machines_of.get(partition, {})
            if self.online_writer is not None:
                self.online_writer.discard(set(machines))  # only if the drain above timed out
            for machine_id in machines:
                self.online.pop(machine_id, None)
            self.processor.forget(partition)
            self.loaded.discard(partition)

    def write_out(self) -> None:
        """Stopping (or the stream was cancelled): the newest vectors to the online store, and a fresh
        snapshot of every partition so the next owner replays little."""
        self.flush_online()
        self.drain_online()
        self.checkpoint(list(self.loaded))


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
