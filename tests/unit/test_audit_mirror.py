"""The local mirror: two processes appending keep one chain; records Kafka missed go later; the policy is
recorded only when it changed; a trace joins alert, version, run and data set."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from forewarn.audit import actions
from forewarn.audit import record as r
from forewarn.audit.settings import resolve_actor
from forewarn.audit.trace import build_trace, render
from forewarn.audit.trail import AuditTrail


def _append_many(path: str, who: str, n: int) -> None:
    trail = AuditTrail(Path(path), trail_id="shared")
    for i in range(n):
        trail.append(actor=who, action="test.step", kind="thing", object_id=f"{who}-{i}")


def test_two_processes_appending_at_once_make_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "trail.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), who, 40)) for who in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(20)
        assert w.exitcode == 0
    trail = AuditTrail(path)
    assert trail.verify() == []
    records = trail.records()
    assert [rec["seq"] for rec in records] == list(range(1, 81))
    assert {rec["actor"] for rec in records} == {"a", "b"} and {rec["trail"] for rec in records} == {"shared"}


class FlakySender:
    destination = "fake topic"

    def __init__(self) -> None:
        self.up, self.got = False, []  # type: tuple[bool, list[dict[str, Any]]]

    def send(self, records: list[dict[str, Any]]) -> str | None:
        if not self.up:
            return "broker down"
        self.got += records
        return None


def test_records_written_while_kafka_is_away_are_sent_with_the_next_one(tmp_path: Path) -> None:
    sender = FlakySender()
    trail = AuditTrail(tmp_path / "t.jsonl", sender=sender)
    first = trail.append(actor="alice", action="a", kind="k", object_id="1")
    assert not first.sent and "not sent to fake topic: broker down; 1 record(s) wait" in first.note
    assert trail.verify() == []  # the local record landed anyway
    sender.up = True
    second = trail.append(actor="alice", action="a", kind="k", object_id="2")
    assert second.sent and [rec["seq"] for rec in sender.got] == [1, 2] and trail.sent_up_to() == 2
    assert trail.unsent() == []
    (tmp_path / "t.jsonl").write_text((tmp_path / "t.jsonl").read_text().splitlines()[0] + "\n")
    assert [p.kind for p in trail.verify()] == ["removed"]  # Kafka confirmed seq 2: the cut shows


def test_no_sender_says_so(tmp_path: Path) -> None:
    appended = AuditTrail(tmp_path / "t.jsonl").append(actor="x", action="a", kind="k", object_id="1")
    assert not appended.sent and "Kafka audit off" in appended.note


def test_a_policy_is_recorded_when_it_changes_only(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "t.jsonl")
    first = actions.policy_loaded(trail, "alerter", source="/p.yaml", content=b"a: 1")
    assert first is not None and first.record["action"] == r.POLICY_LOADED
    assert actions.policy_loaded(trail, "alerter", source="/p.yaml", content=b"a: 1") is None
    changed = actions.policy_loaded(trail, "alerter", source="/p.yaml", content=b"a: 2")
    assert changed is not None and changed.record["action"] == r.POLICY_CHANGED
    assert changed.record["details"]["previous_hash"] == first.record["details"]["content_hash"]


def test_the_actor() -> None:
    assert resolve_actor("operator-7", "alice") == "operator-7"
    assert resolve_actor(None, "alice") == "alice" and resolve_actor(" ", None)


def test_a_trace_walks_alert_version_run_and_data_set(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "t.jsonl")
    actions.dataset_built(trail, "alice", manifest={"content_hash": "sha256:d1", "rows": {"written": 5}},
                          out_dir=tmp_path / "set", lake_dir=None)
    actions.training_run(trail, "alice", run_id="run1", experiment="e", model="m", version="3",
                         data_hash="sha256:d1", rows_hash="sha256:r", data_dir=tmp_path / "set",
                         metrics={"holdout_f1": 0.8})
    actions.promotion(trail, "bob", {"model": "m", "version": "3", "alias": "champion", "decision": "promoted",
                                     "champion_before": None, "champion_after": "3"})
    actions.alert_feedback(trail, "op-1", alert_id="al-1", kind="acknowledged",
                           details={"model_version": "3", "comment": "on it"})
    t = build_trace("al-1", trail.records(), alert_events=[], model_name="m", version_facts=None)
    assert t.model_version["version"] == "3" and t.training_run["run_id"] == "run1"
    assert t.dataset["content_hash"] == "sha256:d1" and t.dataset["actor"] == "alice"
    assert [s["actor"] for s in t.operator_actions] == ["op-1"]
    assert [s["action"] for s in t.model_history] == [r.MODEL_REGISTERED, r.MODEL_PROMOTED, r.ALIAS_CHANGED]
    text = "\n".join(render(t))
    assert "training run run1 by alice" in text and "alert.acknowledged (acknowledged) by op-1" in text
    assert "data set sha256:d1" in text
    unknown = build_trace("nope", trail.records(), alert_events=[], model_name="m", version_facts=None)
    assert unknown.gaps and not unknown.model_version
