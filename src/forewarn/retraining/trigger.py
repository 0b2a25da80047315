"""When to retrain: a pure policy over the monitor's windows.

Each window the monitor reports a :class:`WindowSignal` (did the data drift, has the model decayed, how
many labels arrived); :func:`evaluate` folds it into a :class:`TriggerState` and answers a
:class:`TriggerDecision`: retrain now, and why, or why not. A run is wanted on *sustained* drift (k
consecutive drifted windows, so one noisy window does not retrain), on decay, or once enough new labels
arrived since the last training. It is held back while a run is going, for a cooldown after a run
(wall time: retraining on the same data again is pointless) and for a debounce after a trigger (a run
started by the last trigger may not show as running yet).

Wall times are seconds (``time.time()``); window times are the monitor's event-time epoch ms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

TriggerKind = Literal["drift", "decay", "labels"]
Blocker = Literal["running", "debounce", "cooldown"]


@dataclass(frozen=True)
class TriggerPolicy:
    sustained_windows: int = 3
    min_new_labels: int = 100
    cooldown_s: float = 6 * 3600.0
    debounce_s: float = 600.0


@dataclass(frozen=True)
class WindowSignal:
    window_end_ts: int
    drift_active: bool
    decay_active: bool
    new_labels: int = 0
    decay_detail: str = ""  # e.g. "live precision 0.41 below the holdout's 0.72": goes into the reason


@dataclass(frozen=True)
class TriggerState:
    drifted_streak: int = 0
    labels_since_training: int = 0
    running: bool = False
    last_run_started_at: float | None = None
    last_run_ended_at: float | None = None
    last_trigger_at: float | None = None
    last_trigger_reason: str | None = None
    triggers: int = 0
    windows: int = 0
    last_window_end_ts: int | None = None


@dataclass(frozen=True)
class TriggerDecision:
    retrain: bool
    reason: str  # why retrain, or why not
    kinds: tuple[TriggerKind, ...] = ()  # what asked for a run (also when a blocker held it back)
    blocked_by: Blocker | None = None


def observe_run(state: TriggerState, running: bool, now: float) -> TriggerState:
    """Fold in whether a run is going now (the lock is held), whoever started it."""
    if running and not state.running:
        return replace(state, running=True, last_run_started_at=now)
    if state.running and not running:
        return replace(state, running=False, last_run_ended_at=now)
    return state


def _wanted(policy: TriggerPolicy, state: TriggerState, window: WindowSignal) -> list[tuple[TriggerKind, str]]:
    wanted: list[tuple[TriggerKind, str]] = []
    if state.drifted_streak >= policy.sustained_windows:
        k = policy.sustained_windows
        wanted.append(("drift", f"sustained drift: {k} of the last {k} windows drifted"
                                + (f" ({state.drifted_streak} in a row)" if state.drifted_streak > k else "")))
    if window.decay_active:
        wanted.append(("decay", f"decay: {window.decay_detail or 'the live metrics fell below the model card'}"))
    if state.labels_since_training >= policy.min_new_labels:
        wanted.append(("labels", f"new labels: {state.labels_since_training} since the last training"))
    return wanted


def _blocker(policy: TriggerPolicy, state: TriggerState, now: float) -> tuple[Blocker, str] | None:
    if state.running:
        return "running", "a retraining run is already running"
    if state.last_trigger_at is not None and now - state.last_trigger_at < policy.debounce_s:
        left = policy.debounce_s - (now - state.last_trigger_at)
        return "debounce", f"debounce: triggered {now - state.last_trigger_at:.0f} s ago ({left:.0f} s left)"
    last_run = state.last_run_ended_at or state.last_run_started_at
    if last_run is not None and now - last_run < policy.cooldown_s:
        left = policy.cooldown_s - (now - last_run)
        return "cooldown", f"cooldown: the last run ended {_duration(now - last_run)} ago ({_duration(left)} left)"
    return None


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def evaluate(policy: TriggerPolicy, state: TriggerState, window: WindowSignal,
             now: float) -> tuple[TriggerDecision, TriggerState]:
    """Fold one window into the state and decide. When it says retrain, the new state counts the trigger
    and starts afresh (streak and label count at zero), so the next window does not ask again."""
    streak = state.drifted_streak + 1 if window.drift_active else 0
    state = replace(state, drifted_streak=streak, windows=state.windows + 1,
                    labels_since_training=state.labels_since_training + max(0, window.new_labels),
                    last_window_end_ts=window.window_end_ts)
    wanted = _wanted(policy, state, window)
    if not wanted:
        why = (f"no trigger: {streak} of {policy.sustained_windows} drifted windows in a row, no decay, "
               f"{state.labels_since_training} of {policy.min_new_labels} new labels")
        return TriggerDecision(False, why), state
    kinds = tuple(kind for kind, _ in wanted)
    reason = "; ".join(text for _, text in wanted)
    blocked = _blocker(policy, state, now)
    if blocked is not None:
        blocker, why = blocked
        return TriggerDecision(False, f"{why} (wanted: {reason})", kinds, blocker), state
    state = replace(state, drifted_streak=0, labels_since_training=0, last_trigger_at=now,
                    last_trigger_reason=reason, triggers=state.triggers + 1)
    return TriggerDecision(True, reason, kinds), state


def trigger_kind(reason: str) -> str:
    """The trigger a run's ``--reason`` names (``manual`` when it names none), for the record."""
    for prefix, kind in (("sustained drift", "drift"), ("decay", "decay"), ("new labels", "labels")):
        if reason.startswith(prefix):
            return kind
    return "manual"
