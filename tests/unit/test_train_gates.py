"""Promotion gates and the champion comparison: who gets promoted, and the reasons given otherwise."""

from __future__ import annotations

from forewarn.training.promote import PROMOTED, REFUSED, UNCHANGED, GateLimits, Scores, compare, decide, gate_failures

GOOD = {"holdout_f1": "0.8", "fairness_gap": "0.05", "calibration_error": "0.03", "feature_set_version": "1"}
LIMITS = GateLimits(min_f1=0.6, max_fairness_gap=0.1, max_calibration_error=0.05)


def _scores(f1: float, pr_auc: float) -> Scores:
    return Scores(f1, pr_auc, 0.1, "rescored on the candidate's holdout")


def test_good_candidate_passes_every_gate() -> None:
    assert gate_failures(GOOD, LIMITS, "1") == []


def test_each_gate_gives_its_reason() -> None:
    bad = {**GOOD, "holdout_f1": "0.42", "fairness_gap": "0.3", "calibration_error": "0.2",
           "feature_set_version": "0"}
    reasons = gate_failures(bad, LIMITS, "1")
    assert len(reasons) == 4
    assert "holdout F1 0.4200 is below the floor 0.6000 (--min-f1)" in reasons
    assert any(r.startswith("fairness gap between machine types 0.3000 exceeds 0.1000") for r in reasons)
    assert any(r.startswith("calibration error (ECE) 0.2000 exceeds 0.0500") for r in reasons)
    assert any("feature set '0'" in r and "scorer would refuse" in r for r in reasons)


def test_missing_or_nan_inputs_fail() -> None:
    reasons = gate_failures({"holdout_f1": "nan", "feature_set_version": "1"}, LIMITS, "1")
    assert len(reasons) == 3 and all("was not recorded" in r for r in reasons)


def test_comparison() -> None:
    assert compare(_scores(0.7, 0.8), None) == (True, "there is no champion yet")
    beats, text = compare(_scores(0.8, 0.8), _scores(0.7, 0.9))
    assert beats and text.startswith("beats the champion: candidate F1 0.8000")
    assert compare(_scores(0.7, 0.85), _scores(0.7, 0.8))[0], "equal F1: PR-AUC breaks the tie"
    beats, text = compare(_scores(0.7, 0.8), _scores(0.7, 0.8))
    assert not beats and text.startswith("does not beat the champion")
    assert not compare(_scores(float("nan"), 0.9), _scores(0.1, 0.1))[0]


def test_decisions() -> None:
    assert decide([], True, "beats", []).decision == PROMOTED
    refused = decide(["holdout F1 0.4 is below the floor"], True, "beats the champion", [])
    assert refused.decision == REFUSED and refused.reasons == ["holdout F1 0.4 is below the floor"]
    worse = decide([], False, "does not beat the champion: ...", [])
    assert worse.decision == REFUSED and worse.reasons == ["does not beat the champion: ..."]
    both = decide(["gate"], False, "does not beat", [])
    assert both.reasons == ["gate", "does not beat"]
    assert decide([], True, "", [], already_champion=True).decision == UNCHANGED
