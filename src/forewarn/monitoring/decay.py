"""Model decay: live alert precision, failure recall with lead time and calibration, from labels that
arrive late, compared with the model card's holdout figures.

Pure: no I/O and no clock. The monitor service decodes its topics and feeds a :class:`DecayTracker`
(alert events, operator feedback, ground truth, a sample of scores); every window it calls
:meth:`DecayTracker.judge` with the event time it has reached and turns the three checks of the
:class:`DecayReport` into model-health events.

What counts, with ``h`` the model's horizon (the same label rule as training, forewarn.etl.labels):

* A moment ``t`` (an alert's opening, a score) is *right* when the machine's next failure comes in
  ``[t, t + h]`` and no maintenance comes strictly before it. Maintenance first ends the machine's
  at-risk period and may have prevented the failure, so the moment is *maintained*: neither right nor
  wrong, and left out of precision and calibration. Otherwise it is *wrong* once ``t + h`` (plus the
  configured label delay) has passed; before that its outcome is *pending*.
* An operator's verdict on an alert beats the timeline: ``confirmed_failure`` makes it right,
  ``false_alarm`` wrong. ``maintenance_done`` makes it maintained unless a failure came first.
* A failure is *caught* when an alert opened on its machine in ``[f - h, f)`` after the machine's
  previous failure or maintenance; the lead time is ``f`` minus the earliest such opening.

Every input is stored under a natural key (alert id, machine and time), so a re-delivered event
changes nothing. Memory is bounded: past the configured sizes the oldest entries are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from forewarn.schemas import AlertEvent, FeedbackEvent, GroundTruthEvent

HOUR_MS = 3_600_000
CALIBRATION_BINS = 10

DecayCondition = Literal["precision_decay", "recall_decay", "calibration_decay"]

# Outcome codes of the vectorised timeline join.
_RIGHT, _WRONG, _MAINTAINED, _PENDING = 0, 1, 2, 3
_NEVER = np.iinfo(np.int64).max
_VERDICTS = ("confirmed_failure", "false_alarm", "maintenance_done")


@dataclass(frozen=True)
class HoldoutFigures:
    """What the model card promised on the holdout; None where the reference lacks a figure."""

    precision: float | None = None
    recall: float | None = None
    calibration_error: float | None = None
    lead_time_median_h: float | None = None

    @classmethod
    def from_mapping(cls, holdout: Mapping[str, float]) -> HoldoutFigures:
        """From :attr:`forewarn.monitoring.reference.Reference.holdout` (NaN and missing keys -> None)."""
        def pick(*keys: str) -> float | None:
            for key in keys:
                value = holdout.get(key)
                if value is not None and math.isfinite(float(value)):
                    return float(value)
            return None

        return cls(precision=pick("precision", "holdout_precision"), recall=pick("recall", "holdout_recall"),
                   calibration_error=pick("calibration_error", "holdout_calibration_error"),
                   lead_time_median_h=pick("lead_median_h", "lead_time_median_h", "holdout_lead_time_median_h"))


@dataclass(frozen=True)
class DecaySettings:
    """How many events a judgement needs, how far live figures may fall, and how much is kept."""

    min_alerts: int = 20  # alerts with a known outcome (right or wrong) before precision is judged
    min_failures: int = 10  # failures before recall is judged
    min_scores: int = 200  # scored samples with a known outcome before calibration is judged
    precision_margin: float = 0.15  # decayed when live precision < holdout precision - margin
    recall_margin: float = 0.15  # decayed when live recall < holdout recall - margin
    calibration_margin: float = 0.05  # decayed when live ECE > holdout ECE + margin
    # Reports of a failure may lag it: an alert or score is only called wrong this long after its horizon.
    label_delay_ms: int = 0
    # A ground-truth failure and an operator's failure_ts for it rarely agree to the millisecond: failures
    # of one machine this close together are one failure.
    same_failure_within_ms: int = HOUR_MS
    max_alerts: int = 10_000
    max_scores: int = 50_000
    max_machine_events: int = 20_000  # failures and maintenance, each

    def __post_init__(self) -> None:
        for name in ("min_alerts", "min_failures", "min_scores", "max_alerts", "max_scores", "max_machine_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("label_delay_ms", "same_failure_within_ms", "precision_margin", "recall_margin",
                     "calibration_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")


@dataclass(frozen=True)
class DecayCheck:
    """One live figure against the holdout: what a ``*_decay`` model-health event carries."""

    condition: DecayCondition
    value: float  # the live figure; NaN when there is nothing to measure yet
    holdout: float | None
    limit: float | None  # where decay starts (holdout -/+ margin); None without a holdout figure
    events: int  # what the figure was measured on (alerts, failures, samples)
    minimum: int  # events needed before it is judged
    judged: bool
    decayed: bool  # only ever true when judged
    summary: str


@dataclass(frozen=True)
class AlertPrecision:
    alerts: int  # every alert kept (right + wrong + maintained + pending)
    right: int  # later labelled a true failure
    wrong: int  # false alarms: by an operator, or the horizon passed with no failure
    maintained: int  # maintenance came first: not judged either way
    pending: int  # horizon not over yet and no verdict
    by_operator: int  # of right + wrong, how many an operator's verdict decided
    precision: float  # right / (right + wrong); NaN when none is known
    check: DecayCheck


@dataclass(frozen=True)
class FailureRecall:
    failures: int  # failures whose at-risk period the tracker saw whole
    caught: int  # with an alert opened within the horizon before them
    unobserved: int  # failures left out: their at-risk period began before the tracker saw every alert
    recall: float  # caught / failures; NaN without failures
    lead_time_median_h: float  # of the caught ones; NaN when none
    lead_time_p10_h: float  # 90% of caught failures had at least this much warning
    holdout_lead_time_median_h: float | None
    check: DecayCheck


@dataclass(frozen=True)
class Calibration:
    samples: int  # scores kept
    known: int  # with a known outcome (failure within the horizon, or the horizon over)
    positives: int  # of the known, those followed by a failure within the horizon
    maintained: int  # maintenance came first: left out
    pending: int
    calibration_error: float  # ECE over 10 equal-width bins, as training computes it; NaN when none known
    mean_predicted_p: float  # mean p_failure of the known samples
    observed_rate: float  # positives / known
    check: DecayCheck


@dataclass(frozen=True)
class PredictedPrecision:
    """What the calibrated probabilities say of precision before labels arrive, and how it turned out.

    An alert's probability is the p_failure of the score that opened it: P(failure within the horizon of
    the opening), the very event precision counts."""

    pending_alerts: int  # alerts with no outcome yet (and a known opening probability)
    predicted_precision: float  # mean opening probability of those; NaN when none
    reconciled_alerts: int  # alerts whose outcome became known (right or wrong)
    reconciled_predicted: float  # mean opening probability of those
    reconciled_observed: float  # share of those that were right
    gap: float  # observed - predicted: negative when the probabilities promised more than came true


@dataclass(frozen=True)
class DecayReport:
    now_ts: int
    horizon_ms: int
    machine_type: str | None  # None: the whole fleet
    precision: AlertPrecision
    recall: FailureRecall
    calibration: Calibration
    predicted: PredictedPrecision

    @property
    def checks(self) -> tuple[DecayCheck, DecayCheck, DecayCheck]:
        return self.precision.check, self.recall.check, self.calibration.check

    @property
    def decayed(self) -> bool:
        return any(c.decayed for c in self.checks)

    @property
    def summary(self) -> str:
        decayed = [c.summary for c in self.checks if c.decayed]
        if decayed:
            return " ".join(decayed)
        judged = [c.condition.removesuffix("_decay") for c in self.checks if c.judged]
        if not judged:
            return "Not enough labels yet to judge model decay."
        return f"No decay: live {', '.join(judged)} within the margins of the holdout."

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None), for the monitor's API."""
        out = _finite(asdict(self))
        out["decayed"] = self.decayed
        out["summary"] = self.summary
        return out


@dataclass
class _Alert:
    alert_id: str
    machine_id: str
    machine_type: str
    opened_ts: int
    opening_p: float | None = None
    opening_revision: int | None = None  # the revision opening_p came from: the lowest one seen wins
    verdicts: set[str] = field(default_factory=set)


@dataclass
class _Timeline:
    failures: np.ndarray  # sorted, merged
    maintenance: np.ndarray  # sorted, unique


class DecayTracker:
    """Joins late labels to the alerts and scores that preceded them; :meth:`judge` measures decay.

    ``watch_start_ts``: the event time from which this tracker has seen every alert. A failure whose
    at-risk period began before it is left out of recall (an alert may have preceded it unseen).
    None: the earliest alert or score it is given."""

    def __init__(self, horizon_ms: int, holdout: HoldoutFigures, settings: DecaySettings | None = None,
                 watch_start_ts: int | None = None) -> None:
        if horizon_ms <= 0:
            raise ValueError(f"horizon_ms must be positive, not {horizon_ms}")
        self.horizon_ms = int(horizon_ms)
        self.holdout = holdout
        self.settings = settings or DecaySettings()
        self._watch_start = watch_start_ts
        self._watch_given = watch_start_ts is not None
        self._alerts_complete_from: int | None = None  # raised when an alert is dropped for memory
        self._alerts: dict[str, _Alert] = {}
        self._failures: dict[tuple[str, int], None] = {}
        self._maintenance: dict[tuple[str, int], None] = {}
        self._scores: dict[tuple[str, int], float] = {}
        self._machine_types: dict[str, str] = {}

    # ---- input ------------------------------------------------------------------------------------

    def observe(self, event: AlertEvent | FeedbackEvent | GroundTruthEvent) -> None:
        if isinstance(event, AlertEvent):
            self.add_alert(event)
        elif isinstance(event, FeedbackEvent):
            self.add_feedback(event)
        else:
            self.add_ground_truth(event)

    def add_alert(self, event: AlertEvent) -> None:
        record = self._alert(event.alert_id, event.machine_id, event.machine_type, event.opened_ts)
        if record.opening_revision is None or event.revision < record.opening_revision:
            # The trigger (revision 1) holds the opening score's p_failure; later events the latest score's.
            record.opening_p = float(event.p_failure)
            record.opening_revision = event.revision
        if event.outcome in _VERDICTS:
            record.verdicts.add(event.outcome)
        self._see(event.opened_ts)

    def add_feedback(self, event: FeedbackEvent) -> None:
        record = self._alert(event.alert_id, event.machine_id, event.machine_type, event.alert_window.start_ts)
        if event.kind in _VERDICTS:
            record.verdicts.add(event.kind)
        if event.kind == "confirmed_failure" and event.failure_ts is not None:
            self._remember(self._failures, (event.machine_id, int(event.failure_ts)))
        elif event.kind == "maintenance_done":
            # The operator's word carries no event time of the work; the alert window's end (its latest
            # score) is the closest the stream knows.
            self._remember(self._maintenance, (event.machine_id, int(event.alert_window.end_ts)))

    def add_ground_truth(self, event: GroundTruthEvent) -> None:
        self._machine_types[event.machine_id] = event.machine_type
        if event.kind == "failure":
            self._remember(self._failures, (event.machine_id, int(event.ts)))
        elif event.kind == "maintenance":
            self._remember(self._maintenance, (event.machine_id, int(event.ts)))

    def add_scores(self, machine_ids: Sequence[str], machine_types: Sequence[str], ts: Iterable[int],
                   p_failure: Iterable[float]) -> None:
        """A sample of ``risk.scores``: parallel sequences (lists or numpy arrays)."""
        times = np.asarray(ts, dtype=np.int64).ravel()
        probs = np.asarray(p_failure, dtype=np.float64).ravel()
        if not (len(machine_ids) == len(machine_types) == len(times) == len(probs)):
            raise ValueError("machine_ids, machine_types, ts and p_failure must have the same length")
        if len(times) == 0:
            return
        limit = self.settings.max_scores
        for machine_id, machine_type, moment, p in zip(machine_ids, machine_types, times.tolist(), probs.tolist(),
                                                       strict=True):
            if not math.isfinite(p):
                continue
            key = (str(machine_id), int(moment))
            if key in self._scores:
                continue
            self._scores[key] = min(max(p, 0.0), 1.0)
            self._machine_types[key[0]] = str(machine_type)
            if len(self._scores) > limit:
                del self._scores[next(iter(self._scores))]
        self._see(int(times.min()))

    @property
    def sizes(self) -> dict[str, int]:
        """What is held now (for the monitor's metrics and tests of the bounds)."""
        return {"alerts": len(self._alerts), "scores": len(self._scores), "failures": len(self._failures),
                "maintenance": len(self._maintenance)}

    def _alert(self, alert_id: str, machine_id: str, machine_type: str, opened_ts: int) -> _Alert:
        self._machine_types[machine_id] = machine_type
        record = self._alerts.get(alert_id)
        if record is None:
            record = _Alert(alert_id, machine_id, machine_type, int(opened_ts))
            self._alerts[alert_id] = record
            if len(self._alerts) > self.settings.max_alerts:
                dropped = self._alerts.pop(next(iter(self._alerts)))
                # Failures whose at-risk period reaches back before a dropped alert can no longer be judged.
                bound = dropped.opened_ts + 1
                self._alerts_complete_from = max(bound, self._alerts_complete_from or bound)
        return record

    def _remember(self, store: dict[tuple[str, int], None], key: tuple[str, int]) -> None:
        if key in store:
            return
        store[key] = None
        if len(store) > self.settings.max_machine_events:
            del store[next(iter(store))]

    def _see(self, ts: int) -> None:
        if not self._watch_given and (self._watch_start is None or ts < self._watch_start):
            self._watch_start = int(ts)

    # ---- judgement --------------------------------------------------------------------------------

    def judge(self, now_event_ts: int, machine_type: str | None = None) -> DecayReport:
        """The decay figures as of event time ``now_event_ts``: for the fleet, or one machine type."""
        now = int(now_event_ts)
        horizon = self.horizon_ms
        known_by = now - horizon - self.settings.label_delay_ms  # a moment at or before it saw its horizon
        machines = None if machine_type is None else {
            m for m, t in self._machine_types.items() if t == machine_type}
        timelines = self._timelines(machines)

        alerts = [a for a in self._alerts.values() if machines is None or a.machine_id in machines]
        outcomes = self._alert_outcomes(alerts, timelines, known_by)
        precision = self._precision(alerts, outcomes)
        predicted = _predicted(alerts, outcomes)
        recall = self._recall(alerts, timelines)
        calibration = self._calibration(machines, timelines, known_by)
        return DecayReport(now_ts=now, horizon_ms=horizon, machine_type=machine_type, precision=precision,
                           recall=recall, calibration=calibration, predicted=predicted)

    def _timelines(self, machines: set[str] | None) -> dict[str, _Timeline]:
        failures: dict[str, list[int]] = {}
        maintenance: dict[str, list[int]] = {}
        for machine_id, ts in self._failures:
            if machines is None or machine_id in machines:
                failures.setdefault(machine_id, []).append(ts)
        for machine_id, ts in self._maintenance:
            if machines is None or machine_id in machines:
                maintenance.setdefault(machine_id, []).append(ts)
        window = self.settings.same_failure_within_ms
        out: dict[str, _Timeline] = {}
        for machine_id in failures.keys() | maintenance.keys():
            merged: list[int] = []
            for ts in sorted(failures.get(machine_id, [])):
                if not merged or ts - merged[-1] > window:
                    merged.append(ts)
            out[machine_id] = _Timeline(np.asarray(merged, dtype=np.int64),
                                        np.unique(np.asarray(maintenance.get(machine_id, []), dtype=np.int64)))
        return out

    def _alert_outcomes(self, alerts: list[_Alert], timelines: dict[str, _Timeline], known_by: int) -> list[int]:
        by_machine: dict[str, list[int]] = {}
        for index, alert in enumerate(alerts):
            by_machine.setdefault(alert.machine_id, []).append(index)
        outcomes = [_PENDING] * len(alerts)
        for machine_id, indices in by_machine.items():
            starts = np.asarray([alerts[i].opened_ts for i in indices], dtype=np.int64)
            codes = _outcomes(starts, timelines.get(machine_id), self.horizon_ms, known_by)
            for i, code in zip(indices, codes.tolist(), strict=True):
                outcomes[i] = _with_verdict(code, alerts[i].verdicts)
        return outcomes

    def _precision(self, alerts: list[_Alert], outcomes: list[int]) -> AlertPrecision:
        right = outcomes.count(_RIGHT)
        wrong = outcomes.count(_WRONG)
        by_operator = sum(1 for a, o in zip(alerts, outcomes, strict=True)
                          if o in (_RIGHT, _WRONG) and a.verdicts & {"confirmed_failure", "false_alarm"})
        known = right + wrong
        value = right / known if known else math.nan
        s = self.settings
        holdout = self.holdout.precision
        limit = None if holdout is None else holdout - s.precision_margin
        judged = known >= s.min_alerts
        decayed = judged and limit is not None and value < limit
        where = f"{right} of {known} alerts with a known outcome were real failures"
        if not judged:
            text = f"Live alert precision {_f(value)} ({where}): not judged below {s.min_alerts}."
        elif limit is None:
            text = f"Live alert precision {_f(value)} ({where}); the reference has no holdout precision to compare."
        elif decayed:
            text = (f"Alert precision decayed: {_f(value)} ({where}) is below the holdout's {_f(holdout)} - "
                    f"{s.precision_margin:g}. More alerts are false alarms than the model card promised: check "
                    "data drift and the false-alarm feedback, then retrain (forewarn retrain).")
        else:
            text = (f"Live alert precision {_f(value)} ({where}) is within {s.precision_margin:g} of the "
                    f"holdout's {_f(holdout)}.")
        check = DecayCheck("precision_decay", value, holdout, limit, known, s.min_alerts, judged, decayed, text)
        return AlertPrecision(alerts=len(alerts), right=right, wrong=wrong, maintained=outcomes.count(_MAINTAINED),
                              pending=outcomes.count(_PENDING), by_operator=by_operator, precision=value,
                              check=check)

    def _recall(self, alerts: list[_Alert], timelines: dict[str, _Timeline]) -> FailureRecall:
        horizon = self.horizon_ms
        opened: dict[str, list[int]] = {}
        for alert in alerts:
            opened.setdefault(alert.machine_id, []).append(alert.opened_ts)
        watched_from = max(self._watch_start if self._watch_start is not None else _NEVER,
                           self._alerts_complete_from or 0)
        failures = caught = unobserved = 0
        leads: list[np.ndarray] = []
        for machine_id, timeline in timelines.items():
            failure_ts = timeline.failures
            if len(failure_ts) == 0:
                continue
            # The at-risk period before a failure: the horizon, cut short by the previous failure or
            # maintenance (the machine's life began there).
            previous_failure = np.r_[-_NEVER, failure_ts[:-1]]
            previous_maintenance = _previous(timeline.maintenance, failure_ts)
            lower = np.maximum(failure_ts - horizon, np.maximum(previous_failure, previous_maintenance))
            observed = lower >= watched_from
            unobserved += int((~observed).sum())
            failure_ts, lower = failure_ts[observed], lower[observed]
            failures += len(failure_ts)
            starts = np.sort(np.asarray(opened.get(machine_id, []), dtype=np.int64))
            first_alert = _next(starts, lower, side="left")
            hit = first_alert < failure_ts
            caught += int(hit.sum())
            leads.append(failure_ts[hit] - first_alert[hit])
        value = caught / failures if failures else math.nan
        hours = (np.concatenate(leads) if leads else np.zeros(0)).astype(np.float64) / HOUR_MS
        median = float(np.median(hours)) if len(hours) else math.nan
        p10 = float(np.percentile(hours, 10)) if len(hours) else math.nan
        s = self.settings
        holdout = self.holdout.recall
        limit = None if holdout is None else holdout - s.recall_margin
        judged = failures >= s.min_failures
        decayed = judged and limit is not None and value < limit
        where = (f"{caught} of {failures} failures had an alert within {_hours(horizon)} before them"
                 + (f", median lead {median:.1f} h" if len(hours) else ""))
        if not judged:
            text = f"Live failure recall {_f(value)} ({where}): not judged below {s.min_failures}."
        elif limit is None:
            text = f"Live failure recall {_f(value)} ({where}); the reference has no holdout recall to compare."
        elif decayed:
            text = (f"Failure recall decayed: {_f(value)} ({where}) is below the holdout's {_f(holdout)} - "
                    f"{s.recall_margin:g}. Failures go unwarned: look for data drift or a new failure mode, "
                    "make sure failures are reported, then retrain with the new labels (forewarn retrain).")
        else:
            text = (f"Live failure recall {_f(value)} ({where}) is within {s.recall_margin:g} of the "
                    f"holdout's {_f(holdout)}.")
        check = DecayCheck("recall_decay", value, holdout, limit, failures, s.min_failures, judged, decayed, text)
        return FailureRecall(failures=failures, caught=caught, unobserved=unobserved, recall=value,
                             lead_time_median_h=median, lead_time_p10_h=p10,
                             holdout_lead_time_median_h=self.holdout.lead_time_median_h, check=check)

    def _calibration(self, machines: set[str] | None, timelines: dict[str, _Timeline], known_by: int) -> Calibration:
        by_machine: dict[str, tuple[list[int], list[float]]] = {}
        samples = 0
        for (machine_id, ts), p in self._scores.items():
            if machines is not None and machine_id not in machines:
                continue
            times, probs = by_machine.setdefault(machine_id, ([], []))
            times.append(ts)
            probs.append(p)
            samples += 1
        codes_all: list[np.ndarray] = []
        probs_all: list[np.ndarray] = []
        for machine_id, (times, probs) in by_machine.items():
            codes_all.append(_outcomes(np.asarray(times, dtype=np.int64), timelines.get(machine_id),
                                       self.horizon_ms, known_by))
            probs_all.append(np.asarray(probs, dtype=np.float64))
        codes = np.concatenate(codes_all) if codes_all else np.zeros(0, dtype=np.int64)
        probs_arr = np.concatenate(probs_all) if probs_all else np.zeros(0, dtype=np.float64)
        known_mask = (codes == _RIGHT) | (codes == _WRONG)
        y = (codes[known_mask] == _RIGHT).astype(np.float64)
        p = probs_arr[known_mask]
        known = int(known_mask.sum())
        ece = expected_calibration_error(y, p)
        mean_p = float(p.mean()) if known else math.nan
        rate = float(y.mean()) if known else math.nan
        s = self.settings
        holdout = self.holdout.calibration_error
        limit = None if holdout is None else holdout + s.calibration_margin
        judged = known >= s.min_scores
        decayed = judged and limit is not None and ece > limit
        where = f"over {known} scored samples with a known outcome; mean p {_f(mean_p)}, observed rate {_f(rate)}"
        if not judged:
            text = f"Live calibration error {_f(ece)} ({where}): not judged below {s.min_scores}."
        elif limit is None:
            text = f"Live calibration error {_f(ece)} ({where}); the reference has no holdout calibration error."
        elif decayed:
            text = (f"Calibration decayed: error {_f(ece)} ({where}) exceeds the holdout's {_f(holdout)} + "
                    f"{s.calibration_margin:g}. The probabilities no longer mean what they say, so alert "
                    "thresholds misfire: retrain to recalibrate (forewarn retrain).")
        else:
            text = (f"Live calibration error {_f(ece)} ({where}) is within {s.calibration_margin:g} of the "
                    f"holdout's {_f(holdout)}.")
        check = DecayCheck("calibration_decay", ece, holdout, limit, known, s.min_scores, judged, decayed, text)
        return Calibration(samples=samples, known=known, positives=int(y.sum()),
                           maintained=int((codes == _MAINTAINED).sum()), pending=int((codes == _PENDING).sum()),
                           calibration_error=ece, mean_predicted_p=mean_p, observed_rate=rate, check=check)


def expected_calibration_error(y: np.ndarray, prob: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |observed rate - mean predicted probability| over equal-width bins, row-weighted: the
    definition of forewarn.training.tuning.expected_calibration_error (which the streaming side must not
    import), so live and holdout figures compare."""
    y = np.asarray(y, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    if len(y) == 0:
        return math.nan
    which = np.minimum((prob * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.float64)
    observed = np.bincount(which, weights=y, minlength=bins)
    predicted = np.bincount(which, weights=prob, minlength=bins)
    return float(np.abs(observed - predicted).sum() / counts.sum())


def _outcomes(starts: np.ndarray, timeline: _Timeline | None, horizon_ms: int, known_by: int) -> np.ndarray:
    """Per moment: right, wrong, maintained or pending (the label rule of forewarn.etl.labels)."""
    codes = np.full(len(starts), _PENDING, dtype=np.int64)
    codes[starts <= known_by] = _WRONG
    if timeline is None or len(starts) == 0:
        return codes
    f = _next(timeline.failures, starts, side="left")  # a failure at the moment itself counts
    m = _next(timeline.maintenance, starts, side="right")  # maintenance must come after the moment
    in_life = (f != _NEVER) & (f <= m)  # maintenance at the failure's instant is its repair, not a reset
    right = in_life & (f - starts <= horizon_ms)
    maintained = ~right & (m != _NEVER) & (m - starts <= horizon_ms)
    codes[right] = _RIGHT
    codes[maintained] = _MAINTAINED
    return codes


def _next(sorted_ts: np.ndarray, starts: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    if len(sorted_ts) == 0:
        return np.full(len(starts), _NEVER, dtype=np.int64)
    index = np.searchsorted(sorted_ts, starts, side=side)
    padded = np.append(sorted_ts, _NEVER)
    return padded[index]


def _previous(sorted_ts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per end: the latest entry strictly before it (-_NEVER when none)."""
    if len(sorted_ts) == 0:
        return np.full(len(ends), -_NEVER, dtype=np.int64)
    index = np.searchsorted(sorted_ts, ends, side="left") - 1
    return np.where(index >= 0, sorted_ts[np.maximum(index, 0)], -_NEVER)


def _with_verdict(code: int, verdicts: set[str]) -> int:
    if "confirmed_failure" in verdicts:
        return _RIGHT
    if "false_alarm" in verdicts:
        return _WRONG
    if "maintenance_done" in verdicts and code != _RIGHT:  # unless the machine failed before the work
        return _MAINTAINED
    return code


def _predicted(alerts: list[_Alert], outcomes: list[int]) -> PredictedPrecision:
    pending = [a.opening_p for a, o in zip(alerts, outcomes, strict=True)
               if o == _PENDING and a.opening_p is not None]
    known = [(a.opening_p, o == _RIGHT) for a, o in zip(alerts, outcomes, strict=True)
             if o in (_RIGHT, _WRONG) and a.opening_p is not None]
    predicted = float(np.mean(pending)) if pending else math.nan
    reconciled_p = float(np.mean([p for p, _ in known])) if known else math.nan
    reconciled_obs = float(np.mean([hit for _, hit in known])) if known else math.nan
    return PredictedPrecision(pending_alerts=len(pending), predicted_precision=predicted,
                              reconciled_alerts=len(known), reconciled_predicted=reconciled_p,
                              reconciled_observed=reconciled_obs, gap=reconciled_obs - reconciled_p)


def _f(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _hours(ms: int) -> str:
    return f"{ms / HOUR_MS:g} h"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
