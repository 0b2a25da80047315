"""``forewarn audit trace ALERT_ID``: alert -> model version -> training run -> data set -> operator actions.

:func:`build_trace` is pure: it joins what the alert said (its events, or the trail's feedback records),
what the registry says about the version (its run and data hash) and what the trail recorded (the build,
the run, the registration, the promotion and the operators' actions). What is missing is said, not guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from forewarn.audit import record as r


@dataclass
class Trace:
    alert_id: str
    alert: dict[str, Any] = field(default_factory=dict)
    model_version: dict[str, Any] = field(default_factory=dict)
    training_run: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    model_history: list[dict[str, Any]] = field(default_factory=list)  # registration, promotions, alias moves
    operator_actions: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "alert": self.alert, "model_version": self.model_version,
                "training_run": self.training_run, "dataset": self.dataset, "model_history": self.model_history,
                "operator_actions": self.operator_actions, "gaps": self.gaps}


def _brief(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": rec.get("seq"), "trail": rec.get("trail"), "at": rec.get("at"), "actor": rec.get("actor"),
            "action": rec.get("action"), "object": rec.get("object"), "details": rec.get("details")}


def _about(records: Iterable[Mapping[str, Any]], kind: str, object_id: str) -> list[Mapping[str, Any]]:
    return [rec for rec in records if rec.get("object") == {"kind": kind, "id": object_id}]


def build_trace(alert_id: str, records: Sequence[Mapping[str, Any]], *,
                alert_events: Sequence[Mapping[str, Any]],
                model_name: str, version_facts: Mapping[str, Any] | None) -> Trace:
    """``alert_events``: the alert's events (``alerts`` topic), oldest first; ``version_facts``: the
    registry's view of the version (``run_id``, ``data_hash``), None when it could not be asked."""
    t = Trace(alert_id)
    actions = sorted(_about(records, r.ALERT, alert_id), key=lambda rec: str(rec.get("at")))
    t.operator_actions = [_brief(rec) for rec in actions]
    if alert_events:
        last = alert_events[-1]
        t.alert = {k: last.get(k) for k in ("machine_id", "machine_type", "state", "severity", "reason",
                                            "model_version", "p_failure", "opened_at", "emitted_at")}
        t.alert["events"] = [e.get("action") for e in alert_events]
    version = t.alert.get("model_version") or next(
        (rec["details"].get("model_version") for rec in actions if rec.get("details", {}).get("model_version")), None)
    if not alert_events and not actions:
        t.gaps.append(f"no event of alert {alert_id!r} on the alerts topic and no operator action in the trail: "
                      "check the id ('forewarn audit show', the alerter's GET /v1/alerts)")
    if not actions:
        t.gaps.append("no operator action (ack, feedback) on this alert is recorded")
    if version is None:
        t.gaps.append("the alert names no model version (was the model loaded when it fired?)")
        return t
    model = next((rec["details"].get("model") for rec in actions if rec.get("details", {}).get("model")), model_name)
    version_id = f"{model}/{version}"
    t.model_version = {"model": model, "version": str(version)}
    history = sorted(_about(records, r.MODEL_VERSION, version_id), key=lambda rec: str(rec.get("at")))
    alias_moves = [rec for rec in records if rec.get("action") == r.ALIAS_CHANGED
                   and rec.get("details", {}).get("model") == model
                   and str(version) in (str(rec["details"].get("to_version")), str(rec["details"].get("from_version")))]
    t.model_history = [_brief(rec) for rec in sorted([*history, *alias_moves], key=lambda rec: str(rec.get("at")))]
    registered = next((rec for rec in history if rec.get("action") == r.MODEL_REGISTERED), None)
    run_id = (version_facts or {}).get("run_id") or (registered or {}).get("details", {}).get("run_id")
    if version_facts is None:
        t.gaps.append(f"the registry was not asked about {version_id} (MLflow unreachable or --no-mlflow)")
    else:
        t.model_version.update({k: v for k, v in version_facts.items() if v is not None})
    if registered is None:
        t.gaps.append(f"the registration of {version_id} is not in the trail")
    if not run_id:
        t.gaps.append(f"no training run is known for {version_id}")
        return t
    t.training_run = {"run_id": run_id}
    run_records = _about(records, r.TRAINING, str(run_id))
    if run_records:
        t.training_run.update(_brief(run_records[-1]))
    else:
        t.gaps.append(f"training run {run_id} is not in the trail")
    data_hash = ((version_facts or {}).get("data_hash")
                 or (run_records[-1]["details"].get("data_hash") if run_records else None))
    if not data_hash:
        t.gaps.append(f"no data set hash is known for run {run_id}")
        return t
    t.dataset = {"content_hash": data_hash}
    builds = _about(records, r.DATASET, str(data_hash))
    if builds:
        t.dataset.update(_brief(builds[-1]))
    else:
        t.gaps.append(f"the build of data set {data_hash} is not in the trail (built elsewhere, or before the trail)")
    return t


def render(t: Trace) -> list[str]:
    """The chain for people, one step a line or two."""
    def who(step: Mapping[str, Any]) -> str:
        return f" by {step['actor']} at {step['at']} (trail seq {step['seq']})" if step.get("actor") else ""

    lines = [f"alert {t.alert_id}" + (f": {t.alert.get('machine_id')} ({t.alert.get('machine_type')}), "
                                       f"{t.alert.get('state')}, {t.alert.get('severity')}" if t.alert else "")]
    if t.model_version:
        mv = t.model_version
        lines.append(f"  -> model version {mv['model']} {mv['version']}"
                     + (f" (run {mv['run_id']})" if mv.get("run_id") else ""))
        for step in t.model_history:
            lines.append(f"       {step['action']}{who(step)}")
    if t.training_run:
        tr = t.training_run
        lines.append(f"  -> training run {tr['run_id']}{who(tr)}")
    if t.dataset:
        ds = t.dataset
        out_dir = (ds.get("details") or {}).get("out_dir")
        lines.append(f"  -> data set {ds['content_hash']}" + (f" built into {out_dir}" if out_dir else "") + who(ds))
    lines.append(f"  operator actions ({len(t.operator_actions)}):")
    for step in t.operator_actions:
        details = step.get("details") or {}
        comment = f": {details['comment']!r}" if details.get("comment") else ""
        lines.append(f"    {step['action']} ({details.get('kind')}){who(step)}{comment}")
    for gap in t.gaps:
        lines.append(f"  missing: {gap}")
    return lines
