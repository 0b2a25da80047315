"""The feedback API: list and read alerts, and tell the alerter what really happened.

Feedback becomes a label event on the ``feedback`` topic, for the training ETL. ``acknowledged`` also
stops escalation and acknowledges the PagerDuty incident. Reading needs the viewer role, feedback the
operator role (forewarn.access); feedback is attributed to the authenticated principal on the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from forewarn.access import AccessControl, Principal, Role
from forewarn.alerting.events import FeedbackRequest
from forewarn.alerting.policy import Alert, InvalidTransition, allowed_feedback
from forewarn.observability import ReadinessCheck, ops_router
from forewarn.schemas import FeedbackEvent, FeedbackKind, to_epoch_ms

from ..ports import AlertNotFound
from ..service import AlertService


class AlertView(BaseModel):
    alert: Alert
    allowed_feedback: list[FeedbackKind]

    @classmethod
    def of(cls, alert: Alert) -> AlertView:
        return cls(alert=alert, allowed_feedback=list(allowed_feedback(alert)))


class AlertList(BaseModel):
    alerts: list[AlertView]


class FeedbackAccepted(BaseModel):
    alert: AlertView
    label: FeedbackEvent
    published: bool


def _instant(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    text = value.strip()
    try:
        return to_epoch_ms(int(text)) if text.lstrip("-").isdigit() else to_epoch_ms(text)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def create_app(service: AlertService, access: AccessControl, readiness: ReadinessCheck,
               registry: CollectorRegistry | None = None) -> FastAPI:
    """The feedback API, and the ops routes serving /metrics from ``registry`` (default: the process's)."""
    operator = access.require(Role.OPERATOR)
    router = APIRouter(prefix="/v1", tags=["alerts"], dependencies=[Depends(access.require(Role.VIEWER))])

    @router.get("/alerts")
    def list_alerts(
        state: Literal["triggered", "acknowledged", "resolved"] | None = None,
        machine_id: str | None = None,
        since: Annotated[str | None, Query(description="Opened at or after (RFC 3339 or epoch ms).")] = None,
        until: Annotated[str | None, Query(description="Opened at or before (RFC 3339 or epoch ms).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AlertList:
        alerts = service.list_alerts(state=state, machine_id=machine_id, since=_instant(since, "since"),
                                     until=_instant(until, "until"), limit=limit)
        return AlertList(alerts=[AlertView.of(a) for a in alerts])

    @router.get("/alerts/{alert_id}")
    def get_alert(alert_id: str) -> AlertView:
        alert = service.get_alert(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return AlertView.of(alert)

    @router.post("/alerts/{alert_id}/feedback", responses={403: {}, 404: {}, 409: {}})
    def post_feedback(alert_id: str, request: FeedbackRequest,
                      principal: Principal = Depends(operator)) -> FeedbackAccepted:
        try:
            result = service.feedback(alert_id, request, actor=principal.name)
        except AlertNotFound:
            raise HTTPException(404, f"no alert {alert_id!r}") from None
        except InvalidTransition as exc:
            detail: dict[str, Any] = {"message": str(exc), "state": exc.state, "allowed": list(exc.allowed)}
            raise HTTPException(409, detail) from None
        return FeedbackAccepted(alert=AlertView.of(result.alert), label=result.event, published=result.published)

    app = FastAPI(title="Forewarn alerter", version="1", docs_url="/docs", redoc_url=None)
    app.include_router(router)
    app.include_router(ops_router(readiness, registry=registry))
    return app
