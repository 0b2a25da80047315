"""Kafka topic names: the contract between services (see docs/ARCHITECTURE.md)."""

from typing import Final

SENSOR_READINGS: Final = "sensor.readings"
SENSOR_READINGS_DLQ: Final = "sensor.readings.dlq"
FEATURE_VECTORS: Final = "features.vectors"
RISK_SCORES: Final = "risk.scores"
ALERTS: Final = "alerts"
ALERTS_DLQ: Final = "alerts.dlq"
FEEDBACK: Final = "feedback"
AUDIT: Final = "audit"
AUDIT_CONFIG: Final[dict[str, str]] = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
GROUND_TRUTH: Final = "ground.truth"
MODEL_HEALTH: Final = "model.health"

ALL: Final[tuple[str, ...]] = (
    SENSOR_READINGS,
    SENSOR_READINGS_DLQ,
    FEATURE_VECTORS,
    RISK_SCORES,
    ALERTS,
    ALERTS_DLQ,
    FEEDBACK,
    AUDIT,
    GROUND_TRUTH,
    MODEL_HEALTH,
)
