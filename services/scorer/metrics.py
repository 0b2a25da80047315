"""The scorer's Prometheus metrics, built once by its wiring point (nothing is registered at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ScorerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.scored = Counter("forewarn_scorer_scored_total", "Feature vectors scored", ["model_version"],
                              registry=registry)
        self.bad_messages = Counter("forewarn_scorer_bad_messages_total",
                                    "Feature vectors that could not be decoded", registry=registry)
        self.batch_seconds = Histogram("forewarn_scorer_batch_seconds", "Time to score and deliver one batch",
                                       registry=registry)
        self.model_version = Gauge("forewarn_scorer_model_version", "Version of the model serving now",
                                   registry=registry)
        self.ready = Gauge("forewarn_scorer_ready", "1 while a champion is loaded (what /readyz says)",
                           registry=registry)
        self.consumer_lag = Gauge("forewarn_scorer_consumer_lag", "Feature blocks on the assigned partitions "
                                  "of features.vectors not consumed yet", registry=registry)
