"""Model-health judgements as alerter input: a :class:`~forewarn.schemas.ModelHealthEvent` (the monitor's
``model.health`` topic) becomes a score the policy state machine takes unchanged, so a drifting or decaying
model alerts, deduplicates, cools down and resolves exactly as a failing machine does.

The mapping, one dedup key per (model, condition, scope):

* ``machine_id`` ``model:<model_name>:<scope>`` and ``mode`` the condition, so the dedup key is
  ``model:<model_name>:<scope>:<condition>`` (policy.dedup_key_for);
* ``machine_type`` the reserved :data:`MODEL_HEALTH_TYPE`, whose policy (the policy file's
  ``machine_types.model_health``) routes to the data-science channel, never to the on-call pager;
* ``p_failure`` 1.0 while the condition holds and 0.0 when it is clear: the policy's hysteresis then counts
  consecutive active windows to trigger and consecutive clear windows to resolve;
* event time the window's end, so a replayed or re-published window is stale and never counted twice;
* evidence the sensors (and drifted features) the monitor named; the monitor's one-line summary rides
  along as ``window_summary`` and becomes the alert's reason, so notifiers can say it in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from forewarn.schemas import Contribution, ModelHealthEvent, RiskScore

MODEL_HEALTH_TYPE = "model_health"
"""The reserved machine type of model-health alerts (no asset config declares it)."""
MACHINE_ID_PREFIX = "model:"
ACTIVE_P = 1.0
CLEAR_P = 0.0


class HealthScore(RiskScore):
    """A model-health judgement in the shape the policy takes: a RiskScore plus its condition (read by
    policy.failure_mode_of as the mode) and the monitor's words (read by the policy for the reason)."""

    mode: str = Field(description="The health condition: the dedup key's failure mode.")
    window_summary: str = Field(description="The monitor's one line for people about this window.")


def is_model_health(machine_type: str) -> bool:
    """Whether an alert (or any record keyed by machine type) is about a model, not a machine: consumers
    of ``alerts`` and ``feedback`` that count machine outcomes skip these."""
    return machine_type == MODEL_HEALTH_TYPE


def health_machine_id(model_name: str, scope: str) -> str:
    return f"{MACHINE_ID_PREFIX}{model_name}:{scope}"


def model_and_scope(machine_id: str) -> tuple[str, str] | None:
    """``(model_name, scope)`` of a model-health alert's machine id, or None for a machine's. The scope (a
    machine type or 'all') has no colon; a model name may."""
    if not machine_id.startswith(MACHINE_ID_PREFIX) or ":" not in machine_id[len(MACHINE_ID_PREFIX):]:
        return None
    model_name, scope = machine_id[len(MACHINE_ID_PREFIX):].rsplit(":", 1)
    return model_name, scope


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _feature_scores(details: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Drifted features the monitor described, as feature -> (drift score, how far past its threshold).

    Read from ``details['features']`` (feature -> {'score', 'threshold'}, as forewarn.monitoring writes it,
    or feature -> score), else from ``details['drifted_features']`` when it is a list of names or a
    mapping feature -> score. Anything else is ignored: evidence is a courtesy, never a reason to drop a
    judgement."""
    raw = details.get("features")
    if not isinstance(raw, Mapping):
        listed = details.get("drifted_features")
        raw = listed if isinstance(listed, Mapping) else {n: 1.0 for n in listed if isinstance(n, str)} \
            if isinstance(listed, list | tuple) else {}
    scores: dict[str, tuple[float, float]] = {}
    for feature, value in raw.items():
        if isinstance(value, Mapping):
            score, threshold = _number(value.get("score")), _number(value.get("threshold"))
        else:
            score, threshold = _number(value), None
        if score is not None:
            scores[str(feature)] = (score, score / threshold if threshold else score)
    return scores


def health_evidence(event: ModelHealthEvent) -> list[Contribution]:
    """The sensors the monitor named, most drifted first: each drifted feature with its sensor (features
    are named ``<sensor>_<statistic>...``), its drift score as the value and, as the contribution, how far
    past its threshold it is; then, in the monitor's order, every named sensor no described feature
    accounts for, with contribution 0 (no score given). The policy keeps the largest contributions."""
    features = _feature_scores(event.details)
    sensors_by_length = sorted(event.sensors, key=len, reverse=True)  # 'temp_inlet' before 'temp'
    evidence: list[Contribution] = []
    covered: set[str] = set()
    for feature, (score, rank) in sorted(features.items(), key=lambda kv: -abs(kv[1][1])):
        sensor = next((s for s in sensors_by_length if feature == s or feature.startswith(f"{s}_")), None)
        if sensor is not None:
            covered.add(sensor)
        evidence.append(Contribution(feature=feature, sensor=sensor, value=score, contribution=rank))
    evidence += [Contribution(feature=s, sensor=s, contribution=0.0) for s in event.sensors if s not in covered]
    return evidence


def health_score(event: ModelHealthEvent) -> HealthScore:
    """The policy's input for one model-health judgement (see the module docstring for the mapping)."""
    return HealthScore(
        machine_id=health_machine_id(event.model_name, event.scope),
        machine_type=MODEL_HEALTH_TYPE,
        ts=event.window_end_ts,
        p_failure=ACTIVE_P if event.active else CLEAR_P,
        model_name=event.model_name,
        model_version=event.model_version,
        top_contributors=health_evidence(event),
        scored_at=event.emitted_at,
        mode=event.condition,
        window_summary=event.summary,
    )
