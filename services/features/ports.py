"""What the features worker needs from the outside world, as small Protocols.

The worker (worker.py) holds the state and the exactly-once rules; these are the only things it does
with Kafka and Redis. The real adapters are ``KafkaVectorSink`` and ``KafkaSourceReader`` (kafka_io.py),
``RedisFeatureStore`` (forewarn.online_store) and ``RedisSnapshotStore`` (snapshot_store.py); the unit
tests use in-memory ones (tests/unit/features_fakes.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from forewarn.online_store import PackedVector
from forewarn.services.features.processor import BatchOutput, SourceRecord

# {machine type: exported engine state}, as FeatureEngine.export_state gives it
EngineStates = dict[str, dict[str, np.ndarray]]


class VectorSink(Protocol):
    def publish(self, output: BatchOutput) -> None:
        """Send a batch's feature blocks (to the source partition's number) and its rejects (to the DLQ),
        and return only once all of it is durable; raise if any of it is not. The batch is acked after."""


class OnlineStore(Protocol):
    """The newest vector of each machine (RedisFeatureStore)."""

    def write_rows(self, *, machine_type: str, feature_set_version: str, names: Sequence[str],
                   machine_ids: Sequence[str], ts: Sequence[int], matrix: np.ndarray,
                   sites: Sequence[str | None] | None = None) -> None: ...

    def read_packed(self, machine_ids: Sequence[str]) -> dict[str, PackedVector]: ...


class SnapshotStore(Protocol):
    """One snapshot per source partition. ``save`` merges: the machines it is given replace theirs, the
    others stay as they were (a snapshot of the machines changed since the last one is enough)."""

    def save(self, partition: int, applied: int, states: EngineStates) -> None: ...

    def load(self, partition: int) -> tuple[int, EngineStates]:
        """(applied offset, or -1 with nothing stored; states by machine type)."""
        ...

    def missing(self, partitions: Sequence[int]) -> set[int]:
        """Those of ``partitions`` with no snapshot stored (the store lost it, once this worker saved one)."""
        ...


class SourceReader(Protocol):
    def read(self, partition: int, start: int, end: int) -> Iterable[list[SourceRecord]]:
        """The source partition's records with ``start <= offset < end``, in order, in batches."""
        ...
