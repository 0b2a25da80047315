"""The demo's live view reads risk.scores envelopes and single scores alike."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from forewarn.demo import LiveView


@dataclass
class Message:
    topic_name: str
    payload: bytes

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_name

    def value(self) -> bytes:
        return self.payload


def score(machine: str, p: float) -> dict:
    return {"machine_id": machine, "machine_type": "pump", "ts": 1, "p_failure": p, "model_version": "1"}


def test_envelopes_single_scores_and_alerts_all_show() -> None:
    view = LiveView()
    view.consume([
        Message("risk.scores", orjson.dumps([score("m1", 0.1), score("m2", 0.2), score("m1", 0.9)])),
        Message("risk.scores", orjson.dumps(score("m3", 0.3))),
        Message("alerts", orjson.dumps({"state": "triggered", "machine_id": "m1", "p_failure": 0.9, "reason": "r"})),
    ], alerts_topic="alerts")
    assert view.scores == 4
    assert {m: s["p_failure"] for m, s in view.latest.items()} == {"m1": 0.9, "m2": 0.2, "m3": 0.3}
    assert len(view.alerts) == 1 and "m1" in view.alerts[0]
