"""The scorer's Prometheus metrics, built once by its wiring point (nothing is registered at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)


class ScorerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.scored = Counter("forewarn_scorer_scored_total", "Feature vectors scored", ["model_version"],
                              registry=registry)
        self.bad_messages = Counter("forewarn_scorer_bad_messages_total",
                                    "Feature vectors that could not be decoded", registry=registry)
        self.batch_seconds = Histogram("forewarn_scorer_batch_seconds", "Time to score and deliver one batch",
                                       registry=registry)
        # Event time to scoring: for a live plant the reading -> score latency (device clock to here); for a
        # replay or a backfill it is the data's age, which is why the buckets reach a day.
        self.reading_age = Histogram("forewarn_scorer_reading_age_seconds",
                                     "Age of the oldest reading of each scored block when scored (now minus its "
                                     "event time)", buckets=AGE_BUCKETS, registry=registry)
        self.model_version = Gauge("forewarn_scorer_model_version", "Version of the model serving now",
                                   registry=registry)
        self.ready = Gauge("forewarn_scorer_ready", "1 while a champion is loaded (what /readyz says)",
                           registry=registry)
        self.consumer_lag = Gauge("forewarn_scorer_consumer_lag", "Feature blocks on the assigned partitions "
                                  "of features.vectors not consumed yet", registry=registry)
