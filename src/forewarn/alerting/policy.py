"""The alert policy: a pure state machine per dedup key (machine + failure mode). No I/O, no clock.

``on_score(tracker, score, policy, now)`` and ``on_tick(tracker, policy, now)`` return the next tracker and
the actions to carry out (trigger / escalate / resolve); ``apply_feedback`` does the same for an operator's
verdict. The caller persists the tracker and turns actions into events and notifications.

Two clocks, on purpose:

* event time (``score.ts``) drives everything the scores decide: consecutive counts, "low for 10 minutes",
  cooldown. A replay of old scores therefore alerts exactly as the live run did.
* wall time (``now``, epoch ms) drives what people decide: escalation when nobody acknowledged in time.

Lifecycle of a dedup key: idle -> pending (high scores, not yet enough) -> triggered -> acknowledged ->
resolved (cooling down) -> idle. An *alert* (with an id) exists from triggered on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from forewarn.assets import parse_duration_ms
from forewarn.schemas import AlertAction, AlertState, AlertStatus, Contribution, FeedbackKind, RiskScore, Severity

Level = Literal["high", "band", "low"]

ACTIVE: tuple[AlertStatus, ...] = ("triggered", "acknowledged")
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
ANY_MODE = "any"
MAX_EVIDENCE = 5

DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]
OptionalDurationMs = Annotated[int | None, BeforeValidator(lambda v: None if v is None else parse_duration_ms(v))]


# ---- configuration ------------------------------------------------------------------------------


class SeverityThresholds(BaseModel):
    """p_failure at or above which an alert gets each severity (below ``warning`` it is ``info``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: float = Field(0.95, ge=0, le=1)
    error: float = Field(0.85, ge=0, le=1)
    warning: float = Field(0.6, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> SeverityThresholds:
        if not self.warning <= self.error <= self.critical:
            raise ValueError("severity thresholds must satisfy warning <= error <= critical")
        return self


class Routes(BaseModel):
    """Which notifiers hear about each action; names a deployment has not configured are skipped.

    ``None`` (unset) means every notifier there is: the domain does not know which exist, the alerter's
    notifier registry does, and its policy loader writes their names in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger: tuple[str, ...] | None = None
    escalate: tuple[str, ...] | None = None
    acknowledge: tuple[str, ...] | None = None
    resolve: tuple[str, ...] | None = None

    def for_action(self, kind: AlertAction) -> tuple[str, ...] | None:
        """The notifiers of ``kind``: None for every one, () for none (feedback notes notify nobody)."""
        return getattr(self, kind, ())

    def targets(self, kind: AlertAction, configured: Sequence[str]) -> tuple[str, ...]:
        """The ``configured`` notifiers that hear about ``kind``, in the route's order."""
        route = self.for_action(kind)
        return tuple(configured) if route is None else tuple(name for name in route if name in configured)


class Policy(BaseModel):
    """How one machine type alerts. Durations are written like '10m' and held in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enter_p: float | None = Field(0.8, ge=0, le=1, description="A score is high at p_failure >= this.")
    exit_p: float = Field(0.5, ge=0, le=1, description="A score is low below this (hysteresis band between).")
    rul_enter: float | None = Field(None, description="A score is also high when rul <= this.")
    rul_exit: float | None = Field(None, description="With RUL entry, low needs rul > this (default rul_enter).")
    min_consecutive: int = Field(3, ge=1, description="Consecutive high scores before an alert triggers.")
    resolve_after_low: int | None = Field(10, ge=1, description="Consecutive low scores that resolve an alert.")
    resolve_after: OptionalDurationMs = Field(None, description="Low for this long (event time) also resolves.")
    cooldown: DurationMs = Field(parse_duration_ms("30m"), ge=0, description="After a resolve, highs are ignored "
                                 "for this long (event time).")
    escalate_after: OptionalDurationMs = Field(parse_duration_ms("15m"), description="Escalate when not "
                                               "acknowledged within this (wall time); repeated per level.")
    max_escalations: int = Field(1, ge=0, description="How many times one alert may escalate.")
    severity: SeverityThresholds | Severity = Field(SeverityThresholds(), description="p_failure thresholds, "
                                                   "or one fixed level (for inputs whose p_failure is 0 or 1).")
    routes: Routes = Routes()

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if self.enter_p is None and self.rul_enter is None:
            raise ValueError("set enter_p, rul_enter or both: otherwise nothing can trigger")
        if self.enter_p is not None and self.exit_p > self.enter_p:
            raise ValueError(f"exit_p ({self.exit_p}) must not exceed enter_p ({self.enter_p})")
        if self.rul_exit is not None and (self.rul_enter is None or self.rul_exit < self.rul_enter):
            raise ValueError("rul_exit needs rul_enter and must be >= rul_enter")
        if self.resolve_after_low is None and self.resolve_after is None:
            raise ValueError("set resolve_after_low, resolve_after or both: otherwise nothing resolves")
        return self

    @property
    def rul_exit_value(self) -> float | None:
        return self.rul_exit if self.rul_exit is not None else self.rul_enter


class PolicyBook(BaseModel):
    """Policies by machine type, and by failure mode within a type; unknown types get the defaults."""

    model_config = ConfigDict(frozen=True)

    defaults: Policy = Policy()
    machine_types: Mapping[str, Policy] = Field(default_factory=dict)
    modes: Mapping[str, Mapping[str, Policy]] = Field(default_factory=dict, description="By machine type, then "
                                                      "failure mode (for model_health: condition): modes that "
                                                      "alert differently from their type.")

    def for_type(self, machine_type: str, mode: str | None = None) -> Policy:
        if mode is not None and self.modes:
            by_mode = self.modes.get(machine_type)
            if by_mode is not None and mode in by_mode:
                return by_mode[mode]
        return self.machine_types.get(machine_type, self.defaults)


# ---- state --------------------------------------------------------------------------------------


class Alert(BaseModel):
    """One incident of one dedup key, from trigger to resolve (and the feedback it received)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    dedup_key: str
    machine_id: str
    machine_type: str
    site: str | None = None
    mode: str = ANY_MODE
    state: AlertState
    severity: Severity
    reason: str
    revision: int = Field(0, description="Bumped on every change that emits an event; event ids use it.")
    opened_ts: int = Field(description="Event time of the score that triggered the alert.")
    opened_at: int = Field(description="Wall time the alert triggered (escalation counts from here).")
    updated_at: int
    acknowledged_at: int | None = None
    resolved_ts: int | None = Field(None, description="Event time of the score (or last score) at resolve.")
    resolved_at: int | None = None
    escalation_level: int = 0
    p_failure: float
    peak_p: float
    rul: float | None = None
    min_rul: float | None = None
    horizon: str | None = None
    model_version: str | None = None
    evidence: tuple[Contribution, ...] = ()
    last_ts: int
    outcome: FeedbackKind | None = None
    feedback: tuple[FeedbackKind, ...] = ()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


class Tracker(BaseModel):
    """What the policy remembers about one dedup key between scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dedup_key: str
    machine_id: str
    machine_type: str
    mode: str = ANY_MODE
    status: AlertStatus = "idle"
    high_count: int = 0
    low_count: int = 0
    first_low_ts: int | None = None
    last_ts: int | None = None
    cooldown_until_ts: int | None = None
    incidents: int = 0
    alert: Alert | None = None


class Action(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AlertAction
    alert: Alert = Field(description="The alert as it is right after this action.")
    previous_state: AlertStatus
    reason: str
    ts: int = Field(description="Event time the action refers to.")


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    tracker: Tracker
    actions: tuple[Action, ...] = ()
    stale: bool = False


class InvalidTransition(Exception):
    """Feedback that the alert's state does not allow; ``allowed`` lists what it does allow."""

    def __init__(self, kind: str, alert: Alert, allowed: tuple[FeedbackKind, ...]) -> None:
        self.kind = kind
        self.state = alert.state
        self.allowed = allowed
        super().__init__(
            f"feedback {kind!r} is not allowed for an alert in state {alert.state!r}"
            + (f" with outcome {alert.outcome!r}" if alert.outcome else "")
            + f"; allowed: {', '.join(allowed) or 'none'}"
        )


# ---- functions ----------------------------------------------------------------------------------


def failure_mode_of(score: object) -> str:
    """The failure mode a score is about; scores without one share the mode 'any'."""
    mode = getattr(score, "failure_mode", None) or getattr(score, "mode", None)
    return str(mode) if mode else ANY_MODE


def dedup_key_for(machine_id: str, mode: str) -> str:
    return f"{machine_id}:{mode}"


def new_tracker(score: RiskScore) -> Tracker:
    mode = failure_mode_of(score)
    return Tracker(
        dedup_key=dedup_key_for(score.machine_id, mode),
        machine_id=score.machine_id,
        machine_type=score.machine_type,
        mode=mode,
    )


def alert_id_for(dedup_key: str, incident: int, opened_ts: int) -> str:
    """Deterministic, so reprocessing the same scores can never mint a second id for one incident."""
    return hashlib.sha256(f"{dedup_key}|{incident}|{opened_ts}".encode()).hexdigest()[:20]


class RiskLevels(Protocol):
    """What classifying a score needs: a RiskScore, or the triage's peek at a raw one."""

    @property
    def p_failure(self) -> float: ...
    @property
    def rul(self) -> float | None: ...


def at_rest(tracker: Tracker | None) -> bool:
    """A key whose non-high scores change nothing but ``last_ts``: never seen, or idle with no high counted.
    (``on_score`` keeps such a key idle with ``high_count`` 0 on any non-high score.)"""
    return tracker is None or (tracker.status == "idle" and tracker.high_count == 0)


def classify(policy: Policy, score: RiskLevels) -> Level:
    p_high = policy.enter_p is not None and score.p_failure >= policy.enter_p
    rul_high = policy.rul_enter is not None and score.rul is not None and score.rul <= policy.rul_enter
    if p_high or rul_high:
        return "high"
    p_low = policy.enter_p is None or score.p_failure < policy.exit_p
    rul_exit = policy.rul_exit_value
    rul_low = rul_exit is None or score.rul is None or score.rul > rul_exit
    return "low" if p_low and rul_low else "band"


def severity_for(policy: Policy, p_failure: float, rul: float | None) -> Severity:
    t = policy.severity
    level: Severity = t if isinstance(t, str) else (
        "critical" if p_failure >= t.critical else
        "error" if p_failure >= t.error else
        "warning" if p_failure >= t.warning else
        "info"
    )
    if policy.rul_enter is not None and rul is not None and rul <= policy.rul_enter:
        by_rul: Severity = "critical" if rul <= policy.rul_enter / 2 else "error"
        level = max(level, by_rul, key=SEVERITIES.index)
    return level


def _bump(severity: Severity) -> Severity:
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


def _evidence(score: RiskScore) -> tuple[Contribution, ...]:
    ranked = sorted(score.top_contributors, key=lambda c: abs(c.contribution), reverse=True)
    return tuple(ranked[:MAX_EVIDENCE])


def window_summary_of(score: object) -> str | None:
    """The words an input that judges a window brings (a model-health judgement,
    forewarn.alerting.model_health); machine scores have none."""
    summary = getattr(score, "window_summary", None)
    return str(summary) if summary else None


def _entry_reason(policy: Policy, score: RiskScore) -> str:
    summary = window_summary_of(score)
    if summary is not None:
        return f"{summary} (held for {policy.min_consecutive} consecutive windows)"
    parts = []
    if policy.enter_p is not None and score.p_failure >= policy.enter_p:
        parts.append(f"p_failure {score.p_failure:.2f} >= {policy.enter_p:.2f}")
    if policy.rul_enter is not None and score.rul is not None and score.rul <= policy.rul_enter:
        parts.append(f"RUL {score.rul:g} <= {policy.rul_enter:g}")
    return f"{' and '.join(parts)} for {policy.min_consecutive} consecutive scores"


def _open_alert(t: Tracker, score: RiskScore, policy: Policy, now: int) -> Alert:
    incident = t.incidents + 1
    return Alert(
        id=alert_id_for(t.dedup_key, incident, score.ts),
        dedup_key=t.dedup_key,
        machine_id=t.machine_id,
        machine_type=score.machine_type,
        site=score.site,
        mode=t.mode,
        state="triggered",
        severity=severity_for(policy, score.p_failure, score.rul),
        reason=_entry_reason(policy, score),
        revision=1,
        opened_ts=score.ts,
        opened_at=now,
        updated_at=now,
        p_failure=score.p_failure,
        peak_p=score.p_failure,
        rul=score.rul,
        min_rul=score.rul,
        horizon=score.horizon,
        model_version=score.model_version,
        evidence=_evidence(score),
        last_ts=score.ts,
    )


def _observe(alert: Alert, score: RiskScore) -> Alert:
    """Keep the latest risk and the evidence of the most alarming score seen."""
    update: dict[str, Any] = {"p_failure": score.p_failure, "rul": score.rul, "last_ts": score.ts}
    if score.p_failure > alert.peak_p:
        update.update(peak_p=score.p_failure, evidence=_evidence(score) or alert.evidence)
    if score.rul is not None and (alert.min_rul is None or score.rul < alert.min_rul):
        update["min_rul"] = score.rul
    if score.horizon:
        update["horizon"] = score.horizon
    return alert.model_copy(update=update)


def _maybe_escalate(t: Tracker, policy: Policy, now: int) -> tuple[Tracker, Action | None]:
    alert = t.alert
    if (
        t.status != "triggered" or alert is None or policy.escalate_after is None
        or alert.escalation_level >= policy.max_escalations
    ):
        return t, None
    due = alert.opened_at + policy.escalate_after * (alert.escalation_level + 1)
    if now < due:
        return t, None
    level = alert.escalation_level + 1
    escalated = alert.model_copy(update={
        "escalation_level": level, "severity": _bump(alert.severity), "revision": alert.revision + 1,
        "updated_at": now,
    })
    minutes = (now - alert.opened_at) / 60_000
    action = Action(kind="escalate", alert=escalated, previous_state="triggered", ts=alert.last_ts,
                    reason=f"not acknowledged after {minutes:.1f} min (escalation level {level})")
    return t.model_copy(update={"alert": escalated}), action


def on_score(tracker: Tracker, score: RiskScore, policy: Policy, now: int) -> Decision:
    """Advance one dedup key by one score. Scores not newer than the last one seen are ignored (stale): an
    older one arrived late, one with the same event time is the same reading scored again (a features or
    scorer restart re-publishes its batch in flight), and counting it twice would move the counts."""
    if tracker.last_ts is not None and score.ts <= tracker.last_ts:
        return Decision(tracker=tracker, stale=True)
    level = classify(policy, score)
    t = tracker.model_copy(update={"last_ts": score.ts})
    if t.status == "resolved" and (t.cooldown_until_ts is None or score.ts >= t.cooldown_until_ts):
        t = t.model_copy(update={"status": "idle", "high_count": 0, "low_count": 0, "first_low_ts": None})

    previous = t.status
    actions: list[Action] = []
    if t.status in ("idle", "pending"):
        if level != "high":
            t = t.model_copy(update={"status": "idle", "high_count": 0})
        elif t.high_count + 1 < policy.min_consecutive:
            t = t.model_copy(update={"status": "pending", "high_count": t.high_count + 1})
        else:
            alert = _open_alert(t, score, policy, now)
            t = t.model_copy(update={
                "status": "triggered", "high_count": 0, "low_count": 0, "first_low_ts": None,
                "incidents": t.incidents + 1, "alert": alert,
            })
            actions.append(Action(kind="trigger", alert=alert, previous_state=previous, reason=alert.reason,
                                  ts=score.ts))
    elif t.status in ACTIVE and t.alert is not None:
        alert = _observe(t.alert, score)
        if level == "low":
            low = t.low_count + 1
            first_low = t.first_low_ts if t.first_low_ts is not None else score.ts
            by_count = policy.resolve_after_low is not None and low >= policy.resolve_after_low
            by_time = policy.resolve_after is not None and score.ts - first_low >= policy.resolve_after
            if by_count or by_time:
                reason = (f"{low} consecutive low scores" if by_count
                          else f"low for {(score.ts - first_low) / 60_000:.1f} min")
                summary = window_summary_of(score)
                if summary is not None:
                    reason = (f"clear for {low} consecutive windows" if by_count
                              else f"clear for {(score.ts - first_low) / 60_000:.1f} min") + f": {summary}"
                alert = alert.model_copy(update={
                    "state": "resolved", "resolved_ts": score.ts, "resolved_at": now, "updated_at": now,
                    "revision": alert.revision + 1, "reason": reason,
                })
                t = t.model_copy(update={
                    "status": "resolved", "low_count": 0, "first_low_ts": None, "high_count": 0,
                    "cooldown_until_ts": score.ts + policy.cooldown, "alert": alert,
                })
                actions.append(Action(kind="resolve", alert=alert, previous_state=previous, reason=reason,
                                      ts=score.ts))
            else:
                t = t.model_copy(update={"low_count": low, "first_low_ts": first_low, "alert": alert})
        else:
            t = t.model_copy(update={"low_count": 0, "first_low_ts": None, "alert": alert})
    else:  # resolved and cooling down: highs do not count towards a new incident yet
        t = t.model_copy(update={"high_count": 0})

    t, escalation = _maybe_escalate(t, policy, now)
    if escalation is not None:
        actions.append(escalation)
    return Decision(tracker=t, actions=tuple(actions))


def on_tick(tracker: Tracker, policy: Policy, now: int) -> Decision:
    """Time passing without scores: only escalation depends on it."""
    t, escalation = _maybe_escalate(tracker, policy, now)
    return Decision(tracker=t, actions=(escalation,) if escalation else ())


def allowed_feedback(alert: Alert) -> tuple[FeedbackKind, ...]:
    if "false_alarm" in alert.feedback or "maintenance_done" in alert.feedback:
        return ()
    if "confirmed_failure" in alert.feedback:
        return ("maintenance_done",)
    if alert.state == "triggered":
        return ("acknowledged", "confirmed_failure", "false_alarm", "maintenance_done")
    return ("confirmed_failure", "false_alarm", "maintenance_done")


def apply_feedback(
    alert: Alert, tracker: Tracker | None, kind: FeedbackKind, policy: Policy, now: int
) -> tuple[Alert, Tracker | None, tuple[Action, ...]]:
    """An operator's verdict on an alert. ``tracker`` is the alert's dedup key state; it only changes
    when this alert is still the key's current one. Raises :class:`InvalidTransition`."""
    current = tracker is not None and tracker.alert is not None and tracker.alert.id == alert.id
    if current and tracker is not None and tracker.alert is not None:
        alert = tracker.alert
    allowed = allowed_feedback(alert)
    if kind not in allowed:
        raise InvalidTransition(kind, alert, allowed)

    previous: AlertStatus = alert.state
    update: dict[str, Any] = {"feedback": (*alert.feedback, kind), "updated_at": now,
                              "revision": alert.revision + 1}
    if kind != "acknowledged" and alert.outcome is None:
        update["outcome"] = kind
    action: AlertAction = "feedback"
    reason = f"operator: {kind.replace('_', ' ')}"
    if kind in ("acknowledged", "confirmed_failure") and alert.state == "triggered":
        update.update(state="acknowledged", acknowledged_at=now)
        action = "acknowledge"
    elif kind in ("false_alarm", "maintenance_done") and alert.active:
        update.update(state="resolved", resolved_at=now, resolved_ts=alert.last_ts, reason=reason)
        action = "resolve"
    new_alert = alert.model_copy(update=update)
    result = Action(kind=action, alert=new_alert, previous_state=previous, reason=reason, ts=alert.last_ts)

    new_tracker = tracker
    if current and tracker is not None:
        t_update: dict[str, Any] = {"alert": new_alert}
        if action == "acknowledge":
            t_update["status"] = "acknowledged"
        elif action == "resolve" and kind == "false_alarm":
            last = tracker.last_ts if tracker.last_ts is not None else alert.last_ts
            t_update.update(status="resolved", low_count=0, first_low_ts=None, high_count=0,
                            cooldown_until_ts=last + policy.cooldown)
        elif action == "resolve":  # maintenance done: the machine is repaired, no cooldown
            t_update.update(status="idle", low_count=0, first_low_ts=None, high_count=0, cooldown_until_ts=None)
        new_tracker = tracker.model_copy(update=t_update)
    return new_alert, new_tracker, (result,)
