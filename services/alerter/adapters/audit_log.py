"""The alerter's side of the audit trail: operators' acks and feedback, and the policy it runs with.

A failed audit write is logged as an error, never raised: by then the feedback is committed and published,
and an error answer would only make the operator send it again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from forewarn.alerting.policy import Alert
from forewarn.audit import actions
from forewarn.audit.trail import AuditTrail
from forewarn.errors import UserError

from ..policy_file import SHIPPED, shipped_policy_path

log = logging.getLogger(__name__)

SERVICE_ACTOR = "alerter"


class TrailAuditLog:
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def operator_action(self, alert: Alert, kind: str, actor: str, details: dict[str, object]) -> None:
        try:
            appended = actions.alert_feedback(self.trail, actor, alert_id=alert.id, kind=kind, details={
                "machine_id": alert.machine_id, "machine_type": alert.machine_type, "dedup_key": alert.dedup_key,
                "model_version": alert.model_version, "state": alert.state, **details})
        except (OSError, UserError, ValueError) as exc:
            log.error("audit record of an operator action not written", extra={"fields": {
                "alert_id": alert.id, "kind": kind, "actor": actor, "error": str(exc)}})
            return
        if not appended.sent:
            log.warning("audit record not on Kafka yet", extra={"fields": {"note": appended.note}})

    def policy_in_use(self, name_or_path: str | Path) -> None:
        """Record the policy file's content hash when it differs from the last one recorded."""
        path = shipped_policy_path() if str(name_or_path) == SHIPPED else Path(name_or_path)
        try:
            actions.policy_loaded(self.trail, actions.default_actor(SERVICE_ACTOR), source=str(path.resolve()),
                                  content=path.read_bytes())
        except (OSError, UserError, ValueError) as exc:
            log.error("audit record of the alert policy not written", extra={"fields": {
                "policy": str(path), "error": str(exc)}})
