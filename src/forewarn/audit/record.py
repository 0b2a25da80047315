"""The audit record contract: one JSON object per line of the mirror and per message on ``audit``.

``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of every other field, and
``prev_hash`` is the hash of the record before it in the same trail (:data:`GENESIS` for the first), so
an edit changes a hash, a removal breaks ``seq`` and the link, and a swap breaks the order.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

GENESIS: Final = "sha256:" + "0" * 64

# The audited actions (``action``), and the kinds of object they act on (``object.kind``).
DATASET_BUILT: Final = "dataset.built"
TRAINING_RUN: Final = "training.run"
MODEL_REGISTERED: Final = "model.registered"
MODEL_PROMOTED: Final = "model.promoted"
MODEL_PROMOTION_REFUSED: Final = "model.promotion_refused"
MODEL_PROMOTION_UNCHANGED: Final = "model.promotion_unchanged"
ALIAS_CHANGED: Final = "model.alias_changed"
RETRAINING_TRIGGERED: Final = "retraining.triggered"
RETRAINING_STARTED: Final = "retraining.started"
RETRAINING_FINISHED: Final = "retraining.finished"
POLICY_LOADED: Final = "policy.loaded"
POLICY_CHANGED: Final = "policy.changed"
ALERT_ACKNOWLEDGED: Final = "alert.acknowledged"
ALERT_FEEDBACK: Final = "alert.feedback"

DATASET, TRAINING, MODEL_VERSION, MODEL_ALIAS, RETRAINING, POLICY, ALERT = (
    "dataset", "training_run", "model_version", "model_alias", "retraining", "policy", "alert")


class AuditObject(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1, description="dataset, training_run, model_version, model_alias, ...")
    id: str = Field(min_length=1, description="its identity: a content hash, a run id, 'name/version', ...")


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=1, description="Position in its trail, from 1, without gaps.")
    trail: str = Field(min_length=1, description="Which chain: the writer's mirror (host and file).")
    actor: str = Field(min_length=1, description="A person (FOREWARN_ACTOR, the operator) or a service.")
    action: str = Field(min_length=1)
    object: AuditObject
    details: dict[str, Any] = Field(default_factory=dict)
    at: AwareDatetime
    prev_hash: str
    hash: str

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


def json_safe(value: Any) -> Any:
    """Details as plain JSON (a NaN has no canonical JSON form, so it becomes null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in (sorted(value, key=str) if isinstance(value, set) else value)]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def canonical_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def hash_of(fields: dict[str, Any]) -> str:
    """The hash of a record given as stored (a dict); ``hash`` itself is left out."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
