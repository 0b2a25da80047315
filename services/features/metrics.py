"""Prometheus metrics of the features service: built once by the wiring point (main.py) with the default
registry, and by tests with a fresh one; nothing is registered at import time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class FeaturesMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry  # what the worker's /metrics page serves
        self.readings = Counter("forewarn_features_readings_total", "Readings by outcome", ["outcome"],
                                registry=registry)
        self.batch_seconds = Histogram("forewarn_features_batch_seconds", "Time to process one batch end to end",
                                       registry=registry)
        self.restores = Counter("forewarn_features_restores_total", "Partitions restored from a snapshot",
                                registry=registry)
        self.replayed = Counter("forewarn_features_replayed_total", "Readings replayed into state after a restore",
                                registry=registry)
        self.redis_repairs = Counter(
            "forewarn_features_redis_repairs_total",
            "Partitions whose snapshot and online vectors were rewritten after Redis lost them", registry=registry)
