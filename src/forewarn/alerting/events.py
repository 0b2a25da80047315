"""What the alerter's decisions become: alert events (``alerts`` topic, and what notifiers receive), label
events (``feedback`` topic), the records and deliveries of the outboxes, and the operator's feedback
request. The event models are the topics' contract and live in :mod:`forewarn.schemas`; this module
builds them from the policy's actions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forewarn.schemas import AlertEvent, AlertWindow, EpochMs, FeedbackEvent, FeedbackKind

from .policy import Action, Alert


def alert_event(action: Action, emitted_at: int) -> AlertEvent:
    """The event of one action; its id is stable, so deciding the same action again yields the same event."""
    a = action.alert
    return AlertEvent(
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


def feedback_event(alert: Alert, request: FeedbackRequest, received_at: int) -> FeedbackEvent:
    """The label an operator's verdict gives, about ``alert`` as the verdict left it."""
    mode = request.failure_mode or (alert.mode if request.kind == "confirmed_failure" else None)
    return FeedbackEvent(
        event_id=f"{alert.id}.{alert.revision}.feedback", kind=request.kind, alert_id=alert.id,
        dedup_key=alert.dedup_key, machine_id=alert.machine_id, machine_type=alert.machine_type,
        site=alert.site, failure_ts=request.failure_ts, failure_mode=mode,
        alert_window=AlertWindow(start_ts=alert.opened_ts,
                                 end_ts=alert.resolved_ts if alert.resolved_ts is not None else alert.last_ts),
        alert_state=alert.state, comment=request.comment, operator=request.operator, received_at=received_at,
    )


class OutMessage(BaseModel):
    """A Kafka record waiting in the outbox until the broker confirms it."""

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
