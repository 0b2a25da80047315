"""``forewarn promote``: move the registry alias ``champion`` only to a version that earns it.

A candidate is promoted when it passes every gate (holdout F1 floor, fairness gap, calibration error, the
feature set the features service emits) *and* beats the current champion. Both are compared on the same
rows: the candidate's holdout (``holdout.json`` of its training run) is rebuilt from its training set and
both registered bundles score it as the scorer would. When that set is gone or changed, the recorded
holdout metrics are compared instead, and the decision says so.

Every decision, promotion or refusal, is recorded: model-version tags, a JSON line appended to the
promotions log, a record on the Kafka ``audit`` topic (best effort: the outcome says if it was not sent),
and the decision and any alias move on the hash-chained audit trail (:mod:`forewarn.audit`).

:func:`gate_failures`, :func:`compare` and :func:`decide` are pure; the rest talks to MLflow and Kafka.
"""

from __future__ import annotations

import getpass
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forewarn.errors import UserError

PROMOTED, REFUSED, UNCHANGED = "promoted", "refused", "unchanged"


@dataclass(frozen=True)
class GateLimits:
    min_f1: float = 0.5
    max_fairness_gap: float = 0.2
    max_calibration_error: float = 0.1


@dataclass(frozen=True)
class Scores:
    f1: float
    pr_auc: float
    brier: float
    basis: str  # "rescored on the candidate's holdout" or "recorded at training"

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Scores | None:
        try:
            return cls(float(tags["holdout_f1"]), float(tags["holdout_pr_auc"]), float(tags["holdout_brier"]),
                       "recorded at training")
        except (KeyError, ValueError):
            return None


def _number(tags: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(tags[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def gate_failures(tags: Mapping[str, str], limits: GateLimits, feature_set_version: str) -> list[str]:
    """Why the candidate fails the gates (empty: it passes). A gate input that was not recorded fails."""
    reasons: list[str] = []
    checks = (
        ("holdout_f1", "holdout F1", lambda v: v >= limits.min_f1,
         f"is below the floor {limits.min_f1:.4f} (--min-f1)"),
        ("fairness_gap", "fairness gap between machine types", lambda v: v <= limits.max_fairness_gap,
         f"exceeds {limits.max_fairness_gap:.4f} (--max-fairness-gap)"),
        ("calibration_error", "calibration error (ECE)", lambda v: v <= limits.max_calibration_error,
         f"exceeds {limits.max_calibration_error:.4f} (--max-calibration-error)"),
    )
    for key, label, ok, failing in checks:
        value = _number(tags, key)
        if value is None:
            reasons.append(f"{label} was not recorded (model-version tag {key!r} missing or not a number)")
        elif not ok(value):
            reasons.append(f"{label} {value:.4f} {failing}")
    version = tags.get("feature_set_version")
    if version != feature_set_version:
        reasons.append(f"feature set {version!r} differs from the features service's {feature_set_version!r}: "
                       "the scorer would refuse this model")
    return reasons


def compare(candidate: Scores, champion: Scores | None) -> tuple[bool, str]:
    """Does the candidate beat the champion? F1 first, PR-AUC breaks a tie; equal is not better."""
    if champion is None:
        return True, "there is no champion yet"

    def key(s: Scores) -> tuple[float, float]:
        return (s.f1 if math.isfinite(s.f1) else -1.0, s.pr_auc if math.isfinite(s.pr_auc) else -1.0)

    text = (f"candidate F1 {candidate.f1:.4f} / PR-AUC {candidate.pr_auc:.4f} vs champion F1 {champion.f1:.4f} / "
            f"PR-AUC {champion.pr_auc:.4f} ({champion.basis})")
    if key(candidate) > key(champion):
        return True, f"beats the champion: {text}"
    return False, f"does not beat the champion: {text}"


@dataclass
class Decision:
    decision: str  # promoted | refused | unchanged
    reasons: list[str]  # why not; empty when promoted
    comparison: str
    notes: list[str] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED


def decide(gates: list[str], beats: bool, comparison: str, notes: list[str],
           already_champion: bool = False) -> Decision:
    if already_champion:
        return Decision(UNCHANGED, [], "the candidate already is the champion", notes)
    reasons = list(gates)
    if not beats:
        reasons.append(comparison)
    return Decision(PROMOTED if not reasons else REFUSED, reasons, comparison, notes)


# --- registry, re-scoring and records -----------------------------------------------------------------


@dataclass
class Outcome:
    model: str
    version: str
    champion_before: str | None
    decision: Decision
    candidate: Scores | None
    champion: Scores | None
    audit: dict[str, Any]
    audit_path: Path
    kafka_note: str


def resolve_version(client: Any, name: str, version: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        versions = [int(v.version) for v in client.search_model_versions(f"name='{name}'")]
    except MlflowException as exc:
        raise UserError(f"cannot list versions of {name!r}: {exc}") from exc
    if not versions:
        raise UserError(f"no registered versions of {name!r}; run 'forewarn train' first")
    if version == "latest":
        return str(max(versions))
    if not version.isdigit() or int(version) not in versions:
        raise UserError(f"{name!r} has no version {version!r} (versions: {sorted(versions)})")
    return version


def _champion(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def rescore(tracking_uri: str, name: str, versions: list[str], tags: dict[str, dict[str, str]],
            definition: dict[str, Any]) -> tuple[dict[str, Scores] | None, list[str]]:
    """Score each version on the holdout rows of ``definition``; None (with the reason) when impossible."""
    import numpy as np

    from forewarn.model_bundle import load_bundle
    from forewarn.training.pipeline import holdout_rows, load_training_set
    from forewarn.training.tuning import classification_scores

    notes: list[str] = []
    source = Path(definition.get("data_dir", ""))
    if not source.exists():
        return None, [f"the candidate's training set {source} is not here"]
    try:
        ts = load_training_set(source, label=definition["label"], asset_config=definition.get("asset_config"),
                               max_rows=int(definition["max_rows"]))
    except UserError as exc:
        return None, [f"the candidate's training set could not be read: {exc}"]
    if ts.rows_hash != definition.get("rows_hash"):
        return None, [f"the training set at {source} changed since the candidate was trained (rows hash differs)"]
    rows = holdout_rows(ts.frame, definition)
    if len(rows) != int(definition["rows"]):
        return None, [f"the holdout rebuilt from {source} has {len(rows)} rows, not {definition['rows']}"]
    y = ts.frame[ts.label].to_numpy(dtype=np.int64)[rows]
    matrix = ts.matrix(rows)
    out: dict[str, Scores] = {}
    for version in versions:
        bundle = load_bundle(tracking_uri, name, version, num_threads=2)
        prob = bundle.predict(bundle.align(ts.feature_names, matrix.copy()))
        threshold = _number(tags[version], "decision_threshold")
        if threshold is None:
            threshold = 0.5
            notes.append(f"version {version} has no recorded decision threshold: scored at 0.5")
        s = classification_scores(y, prob, threshold)
        out[version] = Scores(s["f1"], s["pr_auc"], s["brier"], "rescored on the candidate's holdout")
    return out, notes


def _holdout_definition(tags: Mapping[str, str]) -> dict[str, Any] | None:
    import mlflow

    run_id = tags.get("train_run_id")
    if not run_id:
        return None
    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{tags.get('holdout_artifact', 'holdout.json')}"))
    except Exception:  # noqa: BLE001 - a missing artifact only means we fall back to recorded metrics
        return None


def publish_audit(kafka_settings: Any, record: dict[str, Any], timeout_s: float = 8.0) -> str:
    """Best effort: one JSON record on the audit topic; returns what happened, in words."""
    from forewarn import kafka, topics

    topic = kafka_settings.topic(topics.AUDIT)
    reports: list[Any] = []
    try:
        producer = kafka.producer(kafka_settings, extra_config={"message.timeout.ms": int(timeout_s * 1000) - 1000,
                                                                "socket.connection.setup.timeout.ms": 3000})
        producer.produce(topic, key=str(record.get("model")), value=json.dumps(record, sort_keys=True).encode(),
                         on_delivery=lambda err, _msg: reports.append(err))
        producer.flush(timeout_s)
    except Exception as exc:  # noqa: BLE001 - the audit log file is the record of truth
        return f"not sent to Kafka topic {topic!r}: {exc}"
    if not reports:
        return f"not sent to Kafka topic {topic!r}: no delivery report within {timeout_s:.0f} s"
    if reports[0] is not None:
        return f"not sent to Kafka topic {topic!r}: {reports[0]}"
    return f"sent to Kafka topic {topic!r}"


def run_promotion(*, tracking_uri: str, name: str, alias: str, version: str, limits: GateLimits,
                  audit_path: Path, kafka_settings: Any | None, feature_set_version: str) -> Outcome:
    import mlflow
    from mlflow import MlflowClient

    from forewarn.training.pipeline import require_mlflow

    require_mlflow(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    version = resolve_version(client, name, version)
    before = _champion(client, name, alias)
    tags = {version: dict(client.get_model_version(name, version).tags)}
    if before is not None and before != version:
        tags[before] = dict(client.get_model_version(name, before).tags)
    gates = gate_failures(tags[version], limits, feature_set_version)
    notes: list[str] = []
    candidate = Scores.from_tags(tags[version])
    champion = Scores.from_tags(tags[before]) if before and before != version else None
    if before is not None and before != version:
        definition = _holdout_definition(tags[version])
        rescored, why = (rescore(tracking_uri, name, [version, before], tags, definition)
                         if definition else (None, ["the candidate's run holds no holdout definition"]))
        notes += why
        if rescored is not None:
            candidate, champion = rescored[version], rescored[before]
        else:
            notes.append("compared the metrics recorded at training instead (each on its own holdout, not the "
                         "same rows)")
    if candidate is None:
        gates.append("the candidate has no recorded holdout metrics to compare")
        beats, comparison = False, "cannot compare: the candidate's holdout metrics are missing"
    elif before is not None and before != version and champion is None:
        beats, comparison = False, (f"cannot compare with champion version {before}: it could not be re-scored and "
                                    "has no recorded holdout metrics")
    else:
        beats, comparison = compare(candidate, champion)
    decision = decide(gates, beats, comparison, notes, already_champion=before == version)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    if decision.promoted:
        client.set_registered_model_alias(name, alias, version)
        if before is not None:
            client.set_model_version_tag(name, before, "promotion.replaced_by", version)
    for key, value in {"promotion.decision": decision.decision, "promotion.at": at,
                       "promotion.reasons": json.dumps(decision.reasons)[:4500],
                       "promotion.compared_with": before or "none",
                       "promotion.basis": champion.basis if champion else "no champion"}.items():
        client.set_model_version_tag(name, version, key, value)
    record = {
        "type": "model.promotion", "at": at, "actor": getpass.getuser(), "model": name, "version": version,
        "alias": alias, "decision": decision.decision, "reasons": decision.reasons, "comparison": comparison,
        "notes": notes, "champion_before": before, "champion_after": version if decision.promoted else before,
        "candidate": asdict(candidate) if candidate else None, "champion": asdict(champion) if champion else None,
        "limits": asdict(limits), "tracking_uri": tracking_uri,
    }
    audit_path.parent.mkdir(parents=True, exist_ok=True)
    with audit_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
    kafka_note = publish_audit(kafka_settings, record) if kafka_settings is not None else "Kafka audit disabled"
    from forewarn.audit import actions as audit  # the hash-chained trail, beside the promotions log

    trail = audit.trail_at(audit_path.parent / "trail.jsonl", kafka_settings)
    kafka_note += f"; audit trail {trail.path}: " + audit.promotion(trail, audit.default_actor(), record)[-1].note
    return Outcome(name, version, before, decision, candidate, champion, record, audit_path, kafka_note)
