"""One call per audited action, so every writer records the same fields the same way.

Each takes the trail and the actor explicitly; :func:`default_trail` and :func:`default_actor` build them
from settings for the commands that have nothing more specific (a service passes its own name as the
actor of what it does by itself, an operator's name for what they did).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forewarn.audit import record as r
from forewarn.audit.record import RETRAINING_FINISHED, RETRAINING_STARTED
from forewarn.audit.trail import Appended, AuditTrail
from forewarn.settings import KafkaSettings

__all__ = ["RETRAINING_FINISHED", "RETRAINING_STARTED", "alert_feedback", "dataset_built", "default_actor",
           "default_trail", "policy_loaded", "promotion", "retraining", "retraining_triggered", "trail_at",
           "training_run"]


def trail_at(path: Path, kafka_settings: KafkaSettings | None, *, timeout_s: float = 5.0,
             trail_id: str | None = None) -> AuditTrail:
    """The trail mirrored at ``path``, sent to Kafka unless ``kafka_settings`` is None."""
    from forewarn.audit.kafka_io import KafkaSender

    sender = KafkaSender(kafka_settings, timeout_s=timeout_s) if kafka_settings is not None else None
    return AuditTrail(path, sender=sender, trail_id=trail_id)


def default_trail(kafka_settings: KafkaSettings | None = None) -> AuditTrail:
    """From ``FOREWARN_AUDIT__*`` (file, kafka, timeout) and ``FOREWARN_KAFKA__*`` unless given."""
    from forewarn.audit.settings import AuditSettings

    settings = AuditSettings()
    kafka = (kafka_settings or settings.kafka) if settings.audit.kafka else None
    return trail_at(settings.trail_file, kafka, timeout_s=settings.audit.send_timeout_s,
                    trail_id=settings.audit.trail_id)


def default_actor(explicit: str | None = None) -> str:
    from forewarn.audit.settings import AuditSettings, resolve_actor

    return resolve_actor(explicit, AuditSettings().actor)


def model_version_id(model: str, version: str | int) -> str:
    return f"{model}/{version}"


def dataset_built(trail: AuditTrail, actor: str, *, manifest: Mapping[str, Any], out_dir: Path,
                  lake_dir: Path | None) -> Appended:
    return trail.append(actor=actor, action=r.DATASET_BUILT, kind=r.DATASET, object_id=str(manifest["content_hash"]),
                        details={"out_dir": str(out_dir), "lake_dir": str(lake_dir) if lake_dir else None,
                                 "config_hash": manifest.get("config_hash"),
                                 "feature_set_version": manifest.get("feature_set_version"),
                                 "inputs": manifest.get("inputs"), "rows": manifest.get("rows")})


def training_run(trail: AuditTrail, actor: str, *, run_id: str, experiment: str, model: str, version: str | None,
                 data_hash: str, rows_hash: str, data_dir: Path, metrics: Mapping[str, float],
                 extra: Mapping[str, Any] | None = None) -> list[Appended]:
    """The run, then (when it registered one) the model version it registered."""
    headline = {k: metrics[k] for k in ("holdout_f1", "holdout_pr_auc", "holdout_brier", "calibration_error",
                                        "fairness_gap") if k in metrics}
    out = [trail.append(actor=actor, action=r.TRAINING_RUN, kind=r.TRAINING, object_id=run_id, details={
        "experiment": experiment, "model": model, "registered_version": version, "data_hash": data_hash,
        "rows_hash": rows_hash, "data_dir": str(data_dir), "metrics": headline, **dict(extra or {})})]
    if version is not None:
        out.append(trail.append(actor=actor, action=r.MODEL_REGISTERED, kind=r.MODEL_VERSION,
                                object_id=model_version_id(model, version),
                                details={"run_id": run_id, "data_hash": data_hash, "model": model,
                                         "version": str(version)}))
    return out


_DECISIONS = {"promoted": r.MODEL_PROMOTED, "refused": r.MODEL_PROMOTION_REFUSED,
              "unchanged": r.MODEL_PROMOTION_UNCHANGED}


def promotion(trail: AuditTrail, actor: str, summary: Mapping[str, Any]) -> list[Appended]:
    """The decision on a candidate (``summary``: the promotion record), then the alias move it made."""
    model, version = str(summary["model"]), str(summary["version"])
    out = [trail.append(actor=actor, action=_DECISIONS.get(str(summary["decision"]), r.MODEL_PROMOTION_REFUSED),
                        kind=r.MODEL_VERSION, object_id=model_version_id(model, version), details={
                            "model": model, "version": version, "alias": summary.get("alias"),
                            "decision": summary["decision"], "reasons": list(summary.get("reasons") or []),
                            "comparison": summary.get("comparison"),
                            "champion_before": summary.get("champion_before"),
                            "champion_after": summary.get("champion_after")})]
    if summary.get("champion_after") != summary.get("champion_before"):
        out.append(trail.append(actor=actor, action=r.ALIAS_CHANGED, kind=r.MODEL_ALIAS,
                                object_id=f"{model}@{summary.get('alias')}", details={
                                    "model": model, "alias": summary.get("alias"),
                                    "from_version": summary.get("champion_before"),
                                    "to_version": summary.get("champion_after")}))
    return out


def retraining_triggered(trail: AuditTrail, actor: str, *, reason: str, started: str) -> Appended:
    return trail.append(actor=actor, action=r.RETRAINING_TRIGGERED, kind=r.RETRAINING, object_id=reason[:200],
                        details={"reason": reason, "started": started})


def retraining(trail: AuditTrail, actor: str, action: str, record: Mapping[str, Any]) -> Appended:
    keys = ("reason", "trigger", "runner", "started_at", "ended_at", "model", "data_dir", "dataset_hash",
            "train_run_id", "candidate_version", "decision", "reasons", "champion_before", "champion_after", "error")
    return trail.append(actor=actor, action=action, kind=r.RETRAINING, object_id=str(record["run_id"]),
                        details={k: record.get(k) for k in keys if record.get(k) is not None})


def policy_loaded(trail: AuditTrail, actor: str, *, source: str, content: bytes) -> Appended | None:
    """Record the policy a service runs with when it differs from the last one recorded for ``source``
    (None: unchanged, nothing written)."""
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    previous = next((rec for rec in reversed(trail.records()) if rec["object"] == {"kind": r.POLICY, "id": source}),
                    None)
    if previous is not None and previous["details"].get("content_hash") == digest:
        return None
    action = r.POLICY_LOADED if previous is None else r.POLICY_CHANGED
    return trail.append(actor=actor, action=action, kind=r.POLICY, object_id=source, details={
        "content_hash": digest,
        "previous_hash": previous["details"].get("content_hash") if previous is not None else None})


def alert_feedback(trail: AuditTrail, actor: str, *, alert_id: str, kind: str,
                   details: Mapping[str, Any]) -> Appended:
    action = r.ALERT_ACKNOWLEDGED if kind == "acknowledged" else r.ALERT_FEEDBACK
    return trail.append(actor=actor, action=action, kind=r.ALERT, object_id=alert_id, details={"kind": kind, **details})
