"""The triage: which consumed scores can change anything, decided from a cheap peek at the raw document
before the full validation and before any state is read per key.

Nearly every score is a low one of a machine at rest (policy.at_rest), which changes nothing but its key's
``last_ts``. Skipping it leaves ``last_ts`` at the last score that did change something, which matters only
to a score arriving out of order: one older than a skipped low is then applied, not ignored as stale, and at
rest it changes something only if it is high. High scores and every score of a key not at rest always go
through the policy, so every alert decision is unchanged (tests/unit/test_alerter_triage.py proves it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .policy import PolicyBook, classify, dedup_key_for, failure_mode_of


class ScorePeek(Protocol):
    """The fields of a consumed score the triage reads: a RiskScore, or a :class:`Peek` at a raw one."""

    @property
    def machine_id(self) -> str: ...
    @property
    def machine_type(self) -> str: ...
    @property
    def p_failure(self) -> float: ...
    @property
    def rul(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Peek:
    machine_id: str
    machine_type: str
    p_failure: float
    rul: float | None


def peek(doc: Any) -> Peek | None:
    """What the triage needs from a score document, or None when it is not plainly a score (then the full
    validation runs and says what is wrong)."""
    if not isinstance(doc, dict):
        return None
    machine_id, machine_type, p, rul = doc.get("machine_id"), doc.get("machine_type"), doc.get("p_failure"), \
        doc.get("rul")
    if type(machine_id) is not str or type(machine_type) is not str:
        return None
    if not isinstance(p, float | int) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        return None
    if rul is not None and (not isinstance(rul, float | int) or isinstance(rul, bool)):
        return None
    return Peek(machine_id, machine_type, float(p), None if rul is None else float(rul))


def keep_for_policy(scores: Sequence[ScorePeek], restless: set[str], policies: PolicyBook) -> list[bool]:
    """For each score, whether it can change anything. ``restless``: the dedup keys not at rest before
    the batch; it is updated in place, because a key leaves rest with its first high score, and from there
    on within the batch every score of it is kept."""
    keep = []
    for s in scores:
        mode = failure_mode_of(s)
        key = dedup_key_for(s.machine_id, mode)
        if key in restless:
            keep.append(True)
        elif classify(policies.for_type(s.machine_type, mode), s) == "high":
            restless.add(key)
            keep.append(True)
        else:
            keep.append(False)
    return keep
