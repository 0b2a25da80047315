"""Prometheus metrics of the alerter (registered once, in the process-wide default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NOTIFIER_CALLS = Counter(
    "forewarn_alerter_notifier_calls_total",
    "Notifier calls by notifier and outcome (ok, retryable_error, permanent_error, timeout).",
    ["notifier", "outcome"],
)
NOTIFIER_LATENCY = Histogram(
    "forewarn_alerter_notifier_call_seconds",
    "Duration of one notifier call, whatever its outcome.",
    ["notifier"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES = Counter(
    "forewarn_alerter_deliveries_total",
    "Finished deliveries by notifier and result (delivered, dead_lettered, duplicate_skipped).",
    ["notifier", "result"],
)
QUEUE_DEPTH = Gauge(
    "forewarn_alerter_delivery_queue_depth", "Deliveries waiting for a worker, per notifier.", ["notifier"]
)
DEFERRED = Counter(
    "forewarn_alerter_deliveries_deferred_total",
    "Deliveries left in the Redis outbox because a notifier's queue was full (the sweeper resends them).",
    ["notifier"],
)
SCORES = Counter(
    "forewarn_alerter_scores_total",
    "Risk scores consumed, by outcome (applied, duplicate, stale, invalid).",
    ["outcome"],
)
TRANSITIONS = Counter(
    "forewarn_alerter_alert_actions_total", "Alert actions decided by the policy.", ["action", "machine_type"]
)
FEEDBACK = Counter("forewarn_alerter_feedback_total", "Operator feedback accepted, by kind.", ["kind"])
BATCH_SECONDS = Histogram(
    "forewarn_alerter_batch_seconds", "Time to apply one consumed batch (state, outbox, alerts topic, commit)."
)
