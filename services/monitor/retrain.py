"""The retraining trigger, fed by the monitor's windows (forewarn.retraining decides and starts the run)."""

from __future__ import annotations

import logging
import time
from typing import Any

from forewarn.monitoring.monitor import WindowResult
from forewarn.schemas import ModelHealthEvent

log = logging.getLogger(__name__)

DECAY = ("precision_decay", "recall_decay", "calibration_decay")


class RetrainCall:
    def __init__(self, trigger: Any, new_labels: Any) -> None:
        self.trigger = trigger
        self.new_labels = new_labels  # () -> labels since the champion was set
        self.last: dict[str, Any] | None = None

    def __call__(self, result: WindowResult, events: list[ModelHealthEvent]) -> None:
        from forewarn.retraining.trigger import WindowSignal

        drifted = [e for e in events if e.condition == "data_drift" and e.active]
        decayed = [e for e in events if e.condition in DECAY and e.active]
        signal = WindowSignal(window_end_ts=int(result.summary["window_end_ts"]), drift_active=bool(drifted),
                              decay_active=bool(decayed), new_labels=int(self.new_labels()),
                              decay_detail="; ".join(e.summary for e in decayed))
        decision, started = self.trigger.on_window(signal, time.time())
        self.last = {"window": result.window, "retrain": decision.retrain, "reason": decision.reason,
                     "blocked_by": decision.blocked_by, "started": started}
        result.summary["retrain"] = self.last
        if started:
            log.warning("retraining started: %s (%s)", decision.reason, started)
