"""Prometheus metrics of the alerter: built once by the wiring point (bootstrap) in the process-wide
registry, and by tests in a fresh one; whatever observes them gets this object passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AlerterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry  # what /metrics serves
        self.notifier_calls = Counter(
            "forewarn_alerter_notifier_calls_total",
            "Notifier calls by notifier and outcome (ok, retryable_error, permanent_error, timeout).",
            ["notifier", "outcome"], registry=registry,
        )
        self.notifier_latency = Histogram(
            "forewarn_alerter_notifier_call_seconds",
            "Duration of one notifier call, whatever its outcome.",
            ["notifier"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry,
        )
        self.deliveries = Counter(
            "forewarn_alerter_deliveries_total",
            "Finished deliveries by notifier and result (delivered, dead_lettered, duplicate_skipped).",
            ["notifier", "result"], registry=registry,
        )
        self.queue_depth = Gauge(
            "forewarn_alerter_delivery_queue_depth", "Deliveries waiting for a worker, per notifier.",
            ["notifier"], registry=registry,
        )
        self.deferred = Counter(
            "forewarn_alerter_deliveries_deferred_total",
            "Deliveries left in the Redis outbox because a notifier's queue was full (the sweeper resends them).",
            ["notifier"], registry=registry,
        )
        self.scores = Counter(
            "forewarn_alerter_scores_total",
            "Risk scores consumed, by outcome (applied, duplicate, stale, invalid).",
            ["outcome"], registry=registry,
        )
        self.transitions = Counter(
            "forewarn_alerter_alert_actions_total", "Alert actions decided by the policy.",
            ["action", "machine_type"], registry=registry,
        )
        self.feedback = Counter(
            "forewarn_alerter_feedback_total", "Operator feedback accepted, by kind.", ["kind"], registry=registry,
        )
        # A trigger's score carries its reading's event time: for a live plant this is reading -> alert
        # published (device clock to here); the policy's pending time is not in it (the trigger's own score is).
        self.reading_to_alert = Histogram(
            "forewarn_alerter_reading_to_alert_seconds",
            "Now minus the event time of the score that triggered an alert, when the alert is published.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0), registry=registry)
        self.batch_seconds = Histogram(
            "forewarn_alerter_batch_seconds",
            "Time to apply one consumed batch (state, outbox, alerts topic, commit).", registry=registry,
        )
