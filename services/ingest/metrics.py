"""Prometheus metrics of the ingest service, created on first use (never at import time) and shared by
every app in the process, because prometheus-client's default registry refuses duplicate names."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Histogram


@dataclass(frozen=True)
class IngestMetrics:
    accepted: Counter
    rejected: Counter
    requests: Counter
    latency: Histogram


@cache
def ingest_metrics() -> IngestMetrics:
    return IngestMetrics(
        accepted=Counter("forewarn_ingest_readings_accepted", "Readings confirmed by Kafka in sensor.readings."),
        rejected=Counter(
            "forewarn_ingest_readings_rejected", "Readings refused by validation (sent to the DLQ).", ["reason"]
        ),
        requests=Counter("forewarn_ingest_requests", "POST /v1/readings requests by HTTP status.", ["status"]),
        latency=Histogram(
            "forewarn_ingest_request_duration_seconds",
            "Time to answer POST /v1/readings, Kafka confirmation included.",
            buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        ),
    )
