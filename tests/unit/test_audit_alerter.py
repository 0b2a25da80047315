"""The alerter's audit hook: an ack and feedback land on the trail with the actor and the alert's model
version; the policy it runs with is recorded once per content."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from forewarn.alerting.changes import ScoreInput
from forewarn.alerting.events import FeedbackRequest
from forewarn.alerting.policy import Policy, PolicyBook
from forewarn.audit.trail import AuditTrail
from forewarn.schemas import RiskScore
from forewarn.services.alerter.adapters.audit_log import TrailAuditLog
from forewarn.services.alerter.adapters.memory import InMemoryAlertStore, InMemoryDeliveryQueue, InMemoryPublisher
from forewarn.services.alerter.metrics import AlerterMetrics
from forewarn.services.alerter.service import AlertService, Topics

TOPICS = Topics(scores="risk.scores", alerts="alerts", dead_letters="alerts.dlq", feedback="feedback")


def _service(trail: AuditTrail) -> tuple[AlertService, InMemoryPublisher]:
    publisher = InMemoryPublisher()
    service = AlertService(InMemoryAlertStore(), publisher, InMemoryDeliveryQueue(),
                           PolicyBook(defaults=Policy(enter_p=0.8, exit_p=0.5, min_consecutive=3)), TOPICS, (),
                           AlerterMetrics(CollectorRegistry()), clock_ms=lambda: 1_780_000_000_000,
                           audit=TrailAuditLog(trail))
    return service, publisher


def test_acks_and_feedback_are_on_the_trail_with_their_actor(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "trail.jsonl")
    service, publisher = _service(trail)
    service.handle_scores([ScoreInput("risk.scores:0", i, RiskScore(
        machine_id="m1", machine_type="pump", ts=1_767_225_600_000 + i * 1000, p_failure=0.9, model_name="m",
        model_version="4")) for i in range(3)])
    (alert_id,) = {a.id for a in service.list_alerts()}
    service.feedback(alert_id, FeedbackRequest(kind="acknowledged", operator="ana"))
    service.feedback(alert_id, FeedbackRequest(kind="false_alarm", operator="ana", comment="sensor swap"),
                     actor="bob@plant")
    records = trail.records()
    assert [(r["action"], r["actor"]) for r in records] == [("alert.acknowledged", "ana"),
                                                             ("alert.feedback", "bob@plant")]
    assert all(r["object"] == {"kind": "alert", "id": alert_id} for r in records)
    assert records[0]["details"]["model_version"] == "4" and records[1]["details"]["operator"] == "ana"
    assert records[1]["details"]["comment"] == "sensor swap" and trail.verify() == []
    assert len(publisher.on(TOPICS.feedback)) == 2  # the labels still go out as before


def test_the_policy_is_recorded_when_its_content_changes(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "trail.jsonl")
    log = TrailAuditLog(trail)
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults: {}\n")
    log.policy_in_use(policy)
    log.policy_in_use(policy)
    policy.write_text("defaults: {enter_p: 0.9}\n")
    log.policy_in_use(policy)
    assert [r["action"] for r in trail.records()] == ["policy.loaded", "policy.changed"]
