"""What the alerter writes: alert events (``alerts`` topic, and what notifiers receive), label events
(``feedback`` topic), delivery jobs (the Redis outbox) and the feedback request of the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forewarn.schemas import Contribution, EpochMs

from .policy import Action, ActionKind, Alert, AlertState, FeedbackKind, Severity, Status


class AlertEvent(BaseModel):
    """One change of one alert. ``event_id`` is unique and stable: reprocessing yields the same id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    action: ActionKind
    alert_id: str
    revision: int = Field(description="The alert's change counter: orders the events of one alert.")
    dedup_key: str
    machine_id: str
    machine_type: str
    site: str | None = None
    mode: str
    state: AlertState
    previous_state: Status
    reason: str
    severity: Severity
    p_failure: float
    peak_p: float
    rul: float | None = None
    horizon: str | None = None
    model_version: str | None = None
    evidence: list[Contribution] = Field(default_factory=list)
    escalation_level: int = 0
    outcome: FeedbackKind | None = None
    ts: int = Field(description="Event time (epoch ms) of the score behind this change.")
    opened_ts: int
    resolved_ts: int | None = None
    emitted_at: int = Field(description="Wall time (epoch ms) the alerter decided this change.")

    @classmethod
    def from_action(cls, action: Action, emitted_at: int) -> AlertEvent:
        a = action.alert
        return cls(
            event_id=f"{a.id}.{a.revision}", action=action.kind, alert_id=a.id, revision=a.revision,
            dedup_key=a.dedup_key,
            machine_id=a.machine_id, machine_type=a.machine_type, site=a.site, mode=a.mode, state=a.state,
            previous_state=action.previous_state, reason=action.reason, severity=a.severity,
            p_failure=a.p_failure, peak_p=a.peak_p, rul=a.rul if a.rul is not None else a.min_rul,
            horizon=a.horizon, model_version=a.model_version, evidence=list(a.evidence),
            escalation_level=a.escalation_level, outcome=a.outcome, ts=action.ts, opened_ts=a.opened_ts,
            resolved_ts=a.resolved_ts, emitted_at=emitted_at,
        )


class FeedbackRequest(BaseModel):
    """POST /v1/alerts/{id}/feedback."""

    model_config = ConfigDict(extra="forbid")

    kind: FeedbackKind
    failure_ts: EpochMs | None = Field(None, description="When the machine failed (confirmed_failure only).")
    failure_mode: str | None = Field(None, max_length=128, description="How it failed (confirmed_failure).")
    comment: str | None = Field(None, max_length=2000)
    operator: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _failure_fields(self) -> FeedbackRequest:
        if self.kind == "confirmed_failure" and self.failure_ts is None:
            raise ValueError("confirmed_failure needs failure_ts (RFC 3339 or epoch ms)")
        if self.kind != "confirmed_failure" and (self.failure_ts is not None or self.failure_mode):
            raise ValueError("failure_ts and failure_mode belong to confirmed_failure only")
        return self


class AlertWindow(BaseModel):
    start_ts: int = Field(description="Event time the alert triggered.")
    end_ts: int = Field(description="Event time it resolved, or of its latest score while still open.")


class FeedbackEvent(BaseModel):
    """A label for the training ETL (``feedback`` topic): what an operator said about an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    kind: FeedbackKind
    alert_id: str
    dedup_key: str
    machine_id: str
    machine_type: str
    site: str | None = None
    failure_ts: int | None = None
    failure_mode: str | None = None
    alert_window: AlertWindow
    alert_state: AlertState
    comment: str | None = None
    operator: str | None = None
    received_at: int

    @classmethod
    def from_feedback(cls, alert: Alert, request: FeedbackRequest, received_at: int) -> FeedbackEvent:
        mode = request.failure_mode or (alert.mode if request.kind == "confirmed_failure" else None)
        return cls(
            event_id=f"{alert.id}.{alert.revision}.feedback", kind=request.kind, alert_id=alert.id,
            dedup_key=alert.dedup_key, machine_id=alert.machine_id, machine_type=alert.machine_type,
            site=alert.site, failure_ts=request.failure_ts, failure_mode=mode,
            alert_window=AlertWindow(start_ts=alert.opened_ts,
                                     end_ts=alert.resolved_ts if alert.resolved_ts is not None else alert.last_ts),
            alert_state=alert.state, comment=request.comment, operator=request.operator, received_at=received_at,
        )


class OutMessage(BaseModel):
    """A Kafka record waiting in the Redis outbox until the broker confirms it."""

    model_config = ConfigDict(frozen=True)

    id: str
    topic: str
    key: str
    value: str
    created_at: int


class DeliveryJob(BaseModel):
    """One notification of one alert event through one notifier."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="'<event_id>.<notifier>': the idempotency key of the delivery.")
    notifier: str
    event: AlertEvent
    created_at: int
    attempts: int = 0

    @classmethod
    def for_event(cls, event: AlertEvent, notifier: str, created_at: int) -> DeliveryJob:
        return cls(id=f"{event.event_id}.{notifier}", notifier=notifier, event=event, created_at=created_at)


class DeadLetter(BaseModel):
    """What ``alerts.dlq`` receives when a delivery gives up."""

    delivery_id: str
    notifier: str
    attempts: int
    error: str
    failed_at: int
    event: AlertEvent
    kind: Literal["delivery_failed"] = "delivery_failed"
