"""The alerter's triage: skipping non-high scores of keys at rest must never change a decision."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from forewarn.alerting.policy import Policy, PolicyBook, Tracker, at_rest, classify, new_tracker, on_score
from forewarn.alerting.triage import peek
from forewarn.schemas import RiskScore
from forewarn.services.alerter.metrics import AlerterMetrics
from forewarn.services.alerter.service import AlertService

NOW = 1_700_000_000_000


def score(p: float, ts: int, rul: float | None) -> RiskScore:
    return RiskScore(machine_id="m1", machine_type="pump", ts=ts, p_failure=p, rul=rul, model_name="m",
                     model_version="1")


class RestStore:
    """What needs_policy reads from Redis: the loaded markers and the keys not at rest."""

    def __init__(self) -> None:
        self.trackers: dict[str, Tracker] = {}

    def missing_loaded(self, sources: list[str]) -> list[str]:
        return []

    def restless_keys(self) -> set[str]:
        return {k for k, t in self.trackers.items() if not at_rest(t)}


def decisions(policy: Policy, scores: list[RiskScore], batch: int | None,
              ) -> tuple[list[tuple[str, str, int]], Tracker | None]:
    """Actions and final tracker of one key; with ``batch``, the scores go through the service's triage
    ``batch`` at a time, as the stream loop hands them over."""
    store = RestStore()
    service = AlertService(store, None, None, PolicyBook(defaults=policy), None, (),  # type: ignore[arg-type]
                           AlerterMetrics(CollectorRegistry()))
    actions = []
    size = batch or len(scores) or 1
    for start in range(0, len(scores), size):
        chunk = scores[start:start + size]
        keep = service.needs_policy(chunk, ["t:0"]) if batch else [True] * len(chunk)
        for s, kept in zip(chunk, keep, strict=True):
            if not kept:
                continue
            decision = on_score(store.trackers.get("m1:any") or new_tracker(s), s, policy, NOW)
            store.trackers["m1:any"] = decision.tracker
            actions += [(a.kind, a.alert.id, a.alert.revision) for a in decision.actions]
    return actions, store.trackers.get("m1:any")


POLICIES = st.builds(
    Policy,
    enter_p=st.sampled_from([0.8, 0.6]),
    exit_p=st.sampled_from([0.5, 0.3]),
    min_consecutive=st.integers(1, 4),
    resolve_after_low=st.integers(1, 5),
    cooldown=st.sampled_from(["0s", "5s", "30s"]),
    escalate_after=st.none(),
    rul_enter=st.sampled_from([None, 20.0]),
)


@settings(max_examples=300, deadline=None)
@given(policy=POLICIES, batch=st.integers(1, 12),
       steps=st.lists(st.tuples(st.one_of(st.sampled_from([0.05, 0.4, 0.55, 0.7, 0.9]), st.floats(0, 1)),
                                st.sampled_from([None, 5.0, 50.0]), st.integers(1, 3000)),
                      max_size=80))
def test_skipping_lows_at_rest_changes_no_action_and_no_state_but_last_ts(
    policy: Policy, batch: int, steps: list[tuple[float, float | None, int]],
) -> None:
    ts, scores = NOW, []
    for p, rul, gap in steps:
        ts += gap
        scores.append(score(p, ts, rul))
    full_actions, full = decisions(policy, scores, batch=None)
    triaged_actions, triaged = decisions(policy, scores, batch=batch)
    assert triaged_actions == full_actions
    if triaged is None:  # never left rest: the full run's key is at rest too
        assert at_rest(full)
    else:
        assert full is not None
        assert triaged.model_copy(update={"last_ts": None}) == full.model_copy(update={"last_ts": None})


def test_at_rest_means_never_seen_or_idle_without_a_high() -> None:
    t = new_tracker(score(0.1, NOW, None))
    assert at_rest(None) and at_rest(t)
    assert not at_rest(t.model_copy(update={"status": "pending", "high_count": 1}))
    assert not at_rest(t.model_copy(update={"status": "resolved"}))  # cooling down: counts still matter


@pytest.mark.parametrize("doc", [
    None, [], "x", {"machine_id": "m"},
    {"machine_id": 1, "machine_type": "pump", "p_failure": 0.1},
    {"machine_id": "m", "machine_type": "pump", "p_failure": 1.5},
    {"machine_id": "m", "machine_type": "pump", "p_failure": True},
    {"machine_id": "m", "machine_type": "pump", "p_failure": "0.1"},
    {"machine_id": "m", "machine_type": "pump", "p_failure": 0.1, "rul": "12"},
])
def test_peek_leaves_anything_unusual_to_the_full_validation(doc: Any) -> None:
    assert peek(doc) is None


def test_peek_reads_what_classify_needs() -> None:
    seen = peek({"machine_id": "m", "machine_type": "pump", "p_failure": 1, "rul": 12, "ts": 5, "extra": [1]})
    assert seen is not None
    assert (seen.machine_id, seen.machine_type, seen.p_failure, seen.rul) == ("m", "pump", 1.0, 12.0)
    assert classify(Policy(), seen) == "high"
