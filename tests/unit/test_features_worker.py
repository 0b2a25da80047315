"""The features worker's recovery paths against in-memory ports: a crash before the commit, Redis wiped
while the worker runs, the replay after a restore, revocation, and the online store's retries. The real
end-to-end check of the same paths (Kafka, Redis, kill -9) is tests/integration/test_features_service.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from tests.unit.features_fakes import FakeClock, FakeOnlineStore, FakeSink, FakeSnapshotStore, FakeTopic, StoreDown

from forewarn.assets import load_asset_config
from forewarn.services.features.metrics import FeaturesMetrics
from forewarn.services.features.processor import FeatureProcessor, SourceRecord
from forewarn.services.features.settings import FeaturesOptions
from forewarn.services.features.worker import FeatureWorker

PARTITIONS = 2
MACHINES = 8
BASE = 1_767_225_600_000
CONFIG = load_asset_config("plant")


class Ports:
    """One deployment's shared outside world: the topic, the sink, the online store, the snapshots."""

    def __init__(self, topic: FakeTopic) -> None:
        self.topic = topic
        self.sink = FakeSink()
        self.online = FakeOnlineStore()
        self.snapshots = FakeSnapshotStore()
        self.clock = FakeClock()

    def worker(self, **options: object) -> FeatureWorker:
        opts = FeaturesOptions(**{"online_writer_thread": False, "online_flush_s": 0.0, **options})
        processor = FeatureProcessor(CONFIG, emit_interval_ms=opts.emit_interval_ms)
        return FeatureWorker(processor, opts, sink=self.sink, online_store=self.online, snapshots=self.snapshots,
                             source=self.topic, metrics=FeaturesMetrics(CollectorRegistry()),
                             store_errors=(StoreDown,), clock=self.clock)


def make_topic(steps: int = 30, seed: int = 7) -> FakeTopic:
    """Readings of pumps and compressors with gaps in the values, out-of-order ones, exact duplicates, an
    envelope of several readings now and then, and one record per partition that is not JSON."""
    rng = np.random.default_rng(seed)
    topic = FakeTopic(PARTITIONS)
    for step in range(steps):
        envelope: dict[int, list[dict]] = {}
        for m in range(MACHINES):
            machine_type = ("pump", "compressor")[m % 2]
            ts = BASE + step * 1000 + int(rng.integers(0, 300))
            if step > 3 and rng.random() < 0.05:
                ts -= 2500  # out of order, within the allowed lateness
            values = {s: round(float(rng.normal(50, 5)), 3) for s in CONFIG.machine_type(machine_type).sensor_names
                      if rng.random() > 0.05}
            reading = {"machine_id": f"m{m:03d}", "machine_type": machine_type, "ts": ts, "values": values,
                       "site": "north"}
            partition = (m // 2) % PARTITIONS  # both machine types in every partition
            if step % 5 == 2:
                envelope.setdefault(partition, []).append(reading)
                continue
            topic.append(partition, orjson.dumps(reading))
            if rng.random() < 0.03:
                topic.append(partition, orjson.dumps(reading))  # exact duplicate
        for partition, readings in envelope.items():
            topic.append(partition, orjson.dumps(readings))
        if step == 4:
            for partition in range(PARTITIONS):
                topic.append(partition, b"{not json")
    return topic


def state_of(worker: FeatureWorker) -> dict[int, tuple[int, dict[str, np.ndarray]]]:
    """Per loaded partition: (applied offset, {machine: engine row})."""
    result = {}
    for partition in sorted(worker.loaded):
        applied, states = worker.processor.snapshot(partition, only_dirty=False)
        result[partition] = (applied, rows_of(states))
    return result


def rows_of(states: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {str(m): row for state in states.values()
            for m, row in zip(state["machine_ids"].tolist(), state["rows"], strict=True)}


def assert_same_state(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for partition, (applied, rows) in expected.items():
        assert got[partition][0] == applied, partition
        assert got[partition][1].keys() == rows.keys(), partition
        for machine_id, row in rows.items():
            assert np.array_equal(got[partition][1][machine_id], row, equal_nan=True), machine_id


def vectors_by_key(sink: FakeSink) -> dict[tuple[str, int], np.ndarray]:
    seen: dict[tuple[str, int], np.ndarray] = {}
    for _partition, machine_id, ts, row in sink.vectors():
        key = (machine_id, ts)
        if key in seen:  # emitted again (an unacked batch after a crash): must be the very same vector
            assert np.array_equal(seen[key], row, equal_nan=True), key
        seen[key] = row
    return seen


def assert_same_online(got: FakeOnlineStore, expected: FakeOnlineStore) -> None:
    assert got.vectors.keys() == expected.vectors.keys()
    for machine_id, vector in expected.vectors.items():
        stored = got.vectors[machine_id]
        assert (stored.machine_type, stored.ts, stored.names_ref, stored.site) == \
               (vector.machine_type, vector.ts, vector.names_ref, vector.site), machine_id
        assert np.array_equal(stored.values, vector.values, equal_nan=True), machine_id


def run_uninterrupted(topic: FakeTopic, per_partition: int = 5, **options: object) -> tuple[Ports, FeatureWorker]:
    ports = Ports(topic)
    worker = ports.worker(**options)
    for batch in topic.batches(dict.fromkeys(range(PARTITIONS), 0), per_partition):
        worker.handle_batch(batch)
        ports.clock.now += 1.0
    worker.write_out()
    return ports, worker


def stored_state(snapshots: FakeSnapshotStore) -> dict[int, tuple[int, dict[str, np.ndarray]]]:
    result = {}
    for partition in sorted(snapshots.hashes):
        applied, states = snapshots.load(partition)
        result[partition] = (applied, rows_of(states))
    return result


# -- crash before commit -------------------------------------------------------------------------------


@pytest.mark.parametrize("snapshot_in_unacked_batch", [False, True])
@pytest.mark.parametrize("emit_interval_ms", [0, 3000])
def test_a_crash_after_processing_but_before_the_commit_equals_an_uninterrupted_run(
        emit_interval_ms: int, snapshot_in_unacked_batch: bool) -> None:
    topic = make_topic()
    expected_ports, expected_worker = run_uninterrupted(topic, emit_interval_ms=emit_interval_ms)

    ports = Ports(topic)
    first = ports.worker(emit_interval_ms=emit_interval_ms, snapshot_interval_s=4.0)
    committed = dict.fromkeys(range(PARTITIONS), 0)
    batches = topic.batches(committed, 5)
    for _ in range(8):  # one partition's snapshot every 2 s (4 s for both): at batches 3, 5 and 7
        batch = next(batches)
        first.handle_batch(batch)
        ports.clock.now += 1.0
        for record in batch:  # faust commits a batch once the agent asks for the next one
            committed[record.partition] = max(committed[record.partition], record.offset + 1)
    snapshot_offsets = {p: ports.snapshots.load(p)[0] for p in range(PARTITIONS)}
    assert all(-1 < snapshot_offsets[p] < committed[p] - 1 for p in range(PARTITIONS))  # replay ahead
    if not snapshot_in_unacked_batch:
        ports.clock.now -= 0.5  # too early for the next snapshot
    unacked = next(batches)
    first.handle_batch(unacked)  # published, then the worker dies (kill -9): no commit, no write_out
    del first
    snapshot_offsets = {p: ports.snapshots.load(p)[0] for p in range(PARTITIONS)}
    assert (max(snapshot_offsets.values()) >= min(committed.values())) == snapshot_in_unacked_batch

    second = ports.worker(emit_interval_ms=emit_interval_ms, snapshot_interval_s=4.0)
    for batch in topic.batches(committed, 5):
        second.handle_batch(batch)
        ports.clock.now += 1.0
    second.write_out()

    assert_same_state(state_of(second), state_of(expected_worker))
    assert_same_state(stored_state(ports.snapshots), stored_state(expected_ports.snapshots))
    expected_vectors = vectors_by_key(expected_ports.sink)
    got_vectors = vectors_by_key(ports.sink)
    assert got_vectors.keys() == expected_vectors.keys()
    for key, row in expected_vectors.items():
        assert np.array_equal(got_vectors[key], row, equal_nan=True), key
    # Only the unacked batch went out twice; the readings replayed into state were not emitted again.
    counts = Counter((machine_id, ts) for _, machine_id, ts, _ in ports.sink.vectors())
    twice = {key for key, n in counts.items() if n == 2}
    assert max(counts.values()) <= 2
    unacked_keys = {(r["machine_id"], r["ts"]) for record in unacked for r in readings_of(record)}
    assert twice and twice <= unacked_keys
    assert sorted(ports.sink.rejects()) == sorted(expected_ports.sink.rejects())  # each reject once
    assert_same_online(ports.online, expected_ports.online)
    replayed = sum(max(0, committed[p] - snapshot_offsets[p] - 1) for p in range(PARTITIONS))
    assert second.metrics.registry.get_sample_value("forewarn_features_replayed_total") == replayed
    assert second.metrics.registry.get_sample_value("forewarn_features_restores_total") == PARTITIONS


def readings_of(record: SourceRecord) -> list[dict]:
    try:
        decoded = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return []
    return decoded if isinstance(decoded, list) else [decoded]


def last_published(sink: FakeSink) -> dict[str, tuple[int, np.ndarray]]:
    """The vector each machine published last (what its online vector must be: the last accepted one)."""
    return {machine_id: (ts, row) for _, machine_id, ts, row in sink.vectors()}


def test_an_undelivered_batch_raises_and_its_offsets_never_reach_a_snapshot() -> None:
    topic = make_topic(steps=6)
    ports = Ports(topic)
    worker = ports.worker(snapshot_interval_s=0.1)
    batches = topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5)
    worker.handle_batch(next(batches))
    ports.clock.now += 1.0
    saved = {p: ports.snapshots.load(p)[0] for p in range(PARTITIONS)}
    ports.sink.failing = True
    with pytest.raises(RuntimeError, match="not delivered"):
        worker.handle_batch(next(batches))
    assert {p: ports.snapshots.load(p)[0] for p in range(PARTITIONS)} == saved  # the app exits from here


# -- Redis wiped -----------------------------------------------------------------------------------------


def test_redis_wiped_while_running_gets_the_online_vectors_and_a_full_snapshot_back() -> None:
    topic = make_topic()
    ports = Ports(topic)
    worker = ports.worker()
    batches = topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5)
    for _ in range(6):
        worker.handle_batch(next(batches))
        ports.clock.now += 1.0
    online_before = FakeOnlineStore()
    online_before.vectors = dict(ports.online.vectors)
    ports.online.wipe()
    ports.snapshots.wipe()

    worker.tick()  # between batches: the timer notices

    assert_same_online(ports.online, online_before)
    assert_same_state(stored_state(ports.snapshots), state_of(worker))
    assert worker.metrics.registry.get_sample_value("forewarn_features_redis_repairs_total") == PARTITIONS
    worker.tick()  # nothing lost any more: nothing rewritten
    assert worker.metrics.registry.get_sample_value("forewarn_features_redis_repairs_total") == PARTITIONS

    # The repaired snapshot is a consistent one: a new owner restoring it (and replaying after it) ends
    # where this worker ends.
    rest = list(batches)
    for batch in rest:
        worker.handle_batch(batch)
    successor_ports = Ports(topic)
    successor_ports.snapshots = ports.snapshots
    successor = successor_ports.worker()
    successor.handle_batch([r for batch in rest for r in batch])
    assert_same_state(state_of(successor), state_of(worker))


def test_redis_down_and_back_empty_does_not_stall_the_stream_and_is_repaired_when_reachable() -> None:
    topic = make_topic()
    ports = Ports(topic)
    worker = ports.worker(snapshot_interval_s=1.0)
    batches = topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5)
    for _ in range(3):
        worker.handle_batch(next(batches))
        ports.clock.now += 1.0
    ports.online.down = ports.snapshots.down = True
    for _ in range(3):  # writes, checks and snapshots fail: logged, the batches go on
        worker.handle_batch(next(batches))
        ports.clock.now += 1.0
    worker.tick()
    ports.online.wipe()
    ports.snapshots.wipe()
    ports.online.down = ports.snapshots.down = False

    worker.tick()

    assert_same_state(stored_state(ports.snapshots), state_of(worker))
    assert set(ports.online.vectors) == {f"m{m:03d}" for m in range(MACHINES)}
    for machine_id, (ts, row) in last_published(ports.sink).items():
        assert ports.online.vectors[machine_id].ts == ts
        assert np.array_equal(ports.online.vectors[machine_id].values, row, equal_nan=True)


def test_a_checkpoint_over_a_lost_snapshot_writes_every_machine_not_only_the_changed_ones() -> None:
    topic = make_topic()
    ports = Ports(topic)
    worker = ports.worker()
    batches = topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5)
    for _ in range(4):
        worker.handle_batch(next(batches))
    worker.checkpoint([0, 1])
    ports.snapshots.wipe()
    worker.handle_batch([r for r in next(batches) if r.partition == 0][:1])  # one machine changes
    ports.snapshots.wipe()
    worker.checkpoint([0])
    assert_same_state(stored_state(ports.snapshots), {0: state_of(worker)[0]})


# -- replay after restore --------------------------------------------------------------------------------


def test_readings_between_the_snapshot_and_the_first_batch_reach_the_state_without_being_emitted() -> None:
    topic = make_topic()
    _, expected_worker = run_uninterrupted(topic)
    ports = Ports(topic)
    earlier = ports.worker()
    snapshot_at = {0: 20, 1: 15}  # the snapshot holds offsets below these
    earlier.handle_batch([r for p, end in snapshot_at.items() for r in topic.partitions[p][:end]])
    earlier.checkpoint([0, 1])
    ports.sink.published.clear()

    resume_at = {0: 40, 1: 33}  # where the consumer group resumes (committed offsets)
    worker = ports.worker()
    for batch in topic.batches(resume_at, 6):
        worker.handle_batch(batch)
    worker.write_out()

    assert sorted(topic.reads) == [(p, snapshot_at[p], resume_at[p]) for p in range(PARTITIONS)]
    assert_same_state(state_of(worker), state_of(expected_worker))
    emitted = {(machine_id, ts) for _, machine_id, ts, _ in ports.sink.vectors()}
    replayed_keys = {(r["machine_id"], r["ts"]) for p in range(PARTITIONS)
                     for record in topic.partitions[p][snapshot_at[p]:resume_at[p]] for r in readings_of(record)}
    resumed_keys = {(r["machine_id"], r["ts"]) for p in range(PARTITIONS)
                    for record in topic.partitions[p][resume_at[p]:] for r in readings_of(record)}
    assert emitted and emitted <= resumed_keys
    assert not emitted & (replayed_keys - resumed_keys)
    replayed = sum(resume_at[p] - snapshot_at[p] for p in range(PARTITIONS))
    assert worker.metrics.registry.get_sample_value("forewarn_features_replayed_total") == replayed


def test_a_restore_takes_over_the_online_vectors_it_must_rewrite_if_redis_loses_them() -> None:
    topic = make_topic(steps=8)
    ports = Ports(topic)
    earlier = ports.worker()
    for batch in topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5):
        earlier.handle_batch(batch)
    earlier.write_out()
    stored = FakeOnlineStore()
    stored.vectors = dict(ports.online.vectors)

    successor = ports.worker()
    successor.handle_batch([topic.partitions[0][-1]])  # a reading already applied: restores, adds nothing
    ports.online.wipe()
    ports.snapshots.wipe()
    successor.tick()
    partition_0 = set(successor.processor.machines_of[0])
    assert set(ports.online.vectors) == partition_0
    for machine_id in partition_0:
        assert np.array_equal(ports.online.vectors[machine_id].values, stored.vectors[machine_id].values,
                              equal_nan=True)


# -- revocation ------------------------------------------------------------------------------------------


def test_revoked_partitions_are_written_out_checkpointed_and_forgotten() -> None:
    topic = make_topic()
    _, expected_worker = run_uninterrupted(topic)
    ports = Ports(topic)
    worker = ports.worker(online_writer_thread=True, online_flush_s=1000.0)  # rows wait for the release
    worker.start()
    try:
        positions = dict.fromkeys(range(PARTITIONS), 0)
        batches = topic.batches(positions, 5)
        for _ in range(4):
            for record in (batch := next(batches)):
                positions[record.partition] = record.offset + 1
            worker.handle_batch(batch)
        held = state_of(worker)
        machines_0 = set(worker.processor.machines_of[0])

        worker.release_partitions([0])

        assert worker.loaded == {1}
        assert 0 not in worker.processor.machines_of and 0 not in worker.processor.applied
        assert not machines_0 & set(worker.online)
        assert not machines_0 & set(worker.processor.latest)
        assert_same_state({0: stored_state(ports.snapshots)[0]}, {0: held[0]})
        newest = last_published(ports.sink)
        assert {m: ports.online.vectors[m].ts for m in machines_0} == {m: newest[m][0] for m in machines_0}

        # The next owner of partition 0 resumes where the group committed and ends where one worker would.
        successor = ports.worker()
        for batch in topic.batches({0: positions[0]}, 5):
            successor.handle_batch(batch)
        assert_same_state(state_of(successor), {0: state_of(expected_worker)[0]})
    finally:
        assert worker.online_writer is not None
        worker.online_writer.close(5)


# -- the online store ------------------------------------------------------------------------------------


def test_a_failed_online_write_on_the_batch_path_is_retried_with_the_newest_rows() -> None:
    topic = make_topic(steps=12)
    ports = Ports(topic)
    worker = ports.worker()
    batches = topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5)
    worker.handle_batch(next(batches))
    ports.online.down = True
    for _ in range(3):
        worker.handle_batch(next(batches))  # each write fails; the rows wait in the processor
    assert worker.processor.latest
    ports.online.down = False
    worker.handle_batch(next(batches))
    assert not worker.processor.latest
    assert {m: v.ts for m, v in ports.online.vectors.items()} == \
           {m: ts for m, (ts, _) in last_published(ports.sink).items()}


def test_the_online_writer_thread_retries_until_the_store_is_back_and_drains_on_stop() -> None:
    topic = make_topic(steps=12)
    expected_ports, expected_worker = run_uninterrupted(topic)
    ports = Ports(topic)
    worker = ports.worker(online_writer_thread=True)
    assert worker.online_writer is not None
    worker.start()
    try:
        batches = topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5)
        worker.handle_batch(next(batches))  # the restores read the online store: it is up for them
        ports.online.down = True
        for batch in batches:
            worker.handle_batch(batch)
        assert not worker.online_writer.drain(0.2)
        ports.online.down = False
        worker.write_out()
        assert worker.online_writer.drain(0)
    finally:
        worker.online_writer.close(5)
    assert_same_online(ports.online, expected_ports.online)
    assert_same_state(state_of(worker), state_of(expected_worker))


def test_online_flushes_wait_for_the_interval() -> None:
    topic = make_topic(steps=6)
    ports = Ports(topic)
    worker = ports.worker(online_flush_s=5.0)
    flushed_at = []
    for i, batch in enumerate(topic.batches(dict.fromkeys(range(PARTITIONS), 0), 2)):
        writes = ports.online.writes
        worker.handle_batch(batch)
        ports.clock.now += 1.0
        if ports.online.writes > writes:
            flushed_at.append(i)
    assert len(flushed_at) > 2 and flushed_at == list(range(0, 5 * len(flushed_at), 5))


# -- snapshots spread over the interval ------------------------------------------------------------------


def test_one_partition_is_snapshotted_at_a_time_oldest_first() -> None:
    topic = make_topic()
    ports = Ports(topic)
    worker = ports.worker(snapshot_interval_s=4.0)
    for batch in topic.batches(dict.fromkeys(range(PARTITIONS), 0), 3):
        worker.handle_batch(batch)
        ports.clock.now += 1.0
    periodic = [partition for partition, _applied, _machines in ports.snapshots.saves[PARTITIONS:]]
    assert periodic and periodic == [p % PARTITIONS for p in range(len(periodic))]


# -- metrics ---------------------------------------------------------------------------------------------


def test_readings_are_counted_by_outcome_in_the_registry_the_worker_was_given() -> None:
    topic = make_topic(steps=6)
    ports = Ports(topic)
    worker = ports.worker()
    total = Counter[str]()
    for batch in topic.batches(dict.fromkeys(range(PARTITIONS), 0), 5):
        output = worker.handle_batch(batch)
        total.update(accepted=output.accepted, late=output.late, duplicate=output.duplicates,
                     rejected=len(output.rejected))
    registry = worker.metrics.registry
    for outcome, n in total.items():
        assert registry.get_sample_value("forewarn_features_readings_total", {"outcome": outcome}) == n
    assert total["rejected"] == PARTITIONS and total["accepted"] > 0


def test_importing_the_service_registers_no_metric() -> None:
    import forewarn.services.features.app  # noqa: F401
    import forewarn.services.features.main  # noqa: F401
    import forewarn.services.features.worker  # noqa: F401

    assert REGISTRY.get_sample_value("forewarn_features_batch_seconds_count") is None
    FeaturesMetrics(CollectorRegistry())
    FeaturesMetrics(CollectorRegistry())  # one per registry: two workers' tests never clash
