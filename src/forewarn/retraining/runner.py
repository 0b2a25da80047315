"""How the monitor starts a run once the trigger says so: :func:`maybe_retrain`.

Locally a detached ``forewarn retrain --reason ...`` subprocess (it outlives a monitor restart; its log
is under ``<state dir>/logs/``); in Kubernetes a Job created from the template (k8s/base/retrain/job.yaml)
with ``kubectl create -f -``. Either way the run takes the Redis lock itself, so a second start while one
runs is refused by the run, whatever the monitor believed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from forewarn.errors import UserError
from forewarn.retraining.settings import RetrainOptions
from forewarn.retraining.trigger import (
    TriggerDecision,
    TriggerPolicy,
    TriggerState,
    WindowSignal,
    evaluate,
    observe_run,
)
from forewarn.settings import RedisSettings

RUNNER_ENV = "FOREWARN_RETRAIN__RUNNER"
REASON_ANNOTATION = "forewarn.io/retrain-reason"


class Runner(Protocol):
    def start(self, reason: str) -> str:
        """Start one run; returns what was started, in words (pid and log, or the Job's name)."""
        ...


def policy_from(options: RetrainOptions) -> TriggerPolicy:
    return TriggerPolicy(sustained_windows=options.sustained_windows, min_new_labels=options.min_new_labels,
                         cooldown_s=options.cooldown_s, debounce_s=options.debounce_s)


def maybe_retrain(decision: TriggerDecision, runner: Runner) -> str | None:
    """Start a run when the decision says so; returns what was started, or None."""
    if not decision.retrain:
        return None
    return runner.start(decision.reason)


class SubprocessRunner:
    def __init__(self, log_dir: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 popen: Callable[..., Any] = subprocess.Popen) -> None:
        self.log_dir, self.env, self.cwd, self._popen = log_dir, dict(env or {}), cwd, popen
        self.process: Any = None

    def argv(self, reason: str) -> list[str]:
        return [sys.executable, "-m", "forewarn.cli", "retrain", "--reason", reason]

    def start(self, reason: str) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"retrain-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
        with log_path.open("ab") as log:
            # A session of its own: the run survives the monitor's stop (SIGTERM to its process group).
            self.process = self._popen(self.argv(reason), stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd,
                                       env={**os.environ, **self.env, RUNNER_ENV: "subprocess"})
        return f"forewarn retrain (pid {self.process.pid}), log {log_path}"


def _job_name(base: str, stamp: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", f"{base}-{stamp}".lower()).strip("-")
    return name[:63].rstrip("-")


def build_job_manifest(template: Mapping[str, Any], reason: str, *, stamp: str,
                       namespace: str | None = None) -> dict[str, Any]:
    """The Job to create: the template with a unique name, the reason as an argument and an annotation,
    and ``FOREWARN_RETRAIN__RUNNER=kubernetes`` for the record. Pure: the tests check it here."""
    job = copy.deepcopy(dict(template))
    if job.get("kind") != "Job":
        raise UserError(f"the retraining template is a {job.get('kind')!r}, not a Job; see k8s/base/retrain/job.yaml")
    meta = job.setdefault("metadata", {})
    meta["name"] = _job_name(meta.get("name", "forewarn-retrain"), stamp)
    meta.pop("generateName", None)
    if namespace:
        meta["namespace"] = namespace
    meta.setdefault("annotations", {})[REASON_ANNOTATION] = reason[:1000]
    pod = job["spec"]["template"]["spec"]
    containers = pod.get("containers") or []
    if not containers:
        raise UserError("the retraining Job template has no container")
    container = containers[0]
    container["args"] = ["retrain", "--reason", reason]
    env = [e for e in container.get("env", []) if e.get("name") != RUNNER_ENV]
    container["env"] = [*env, {"name": RUNNER_ENV, "value": "kubernetes"}]
    return job


def load_template(path: Path) -> dict[str, Any]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except OSError as exc:
        raise UserError(f"cannot read the retraining Job template {path}: {exc}; mount the "
                        "forewarn-retrain-job ConfigMap there or set FOREWARN_RETRAIN__JOB_TEMPLATE") from exc
    if len(docs) != 1:
        raise UserError(f"{path} must hold exactly one Job manifest, not {len(docs)} documents")
    return dict(docs[0])


class KubernetesRunner:
    def __init__(self, template: Mapping[str, Any], *, kubectl: str = "kubectl", namespace: str | None = None,
                 run: Callable[..., Any] = subprocess.run) -> None:
        self.template, self.kubectl, self.namespace, self._run = template, kubectl, namespace, run

    def start(self, reason: str) -> str:
        job = build_job_manifest(self.template, reason, stamp=time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
                                 namespace=self.namespace)
        done = self._run([self.kubectl, "create", "-f", "-"], input=json.dumps(job), capture_output=True,
                         text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise UserError(f"kubectl create of Job {job['metadata']['name']} failed: {done.stderr.strip()[:500]}")
        return f"Job {job['metadata']['name']}"


def runner_from(options: RetrainOptions, state_dir: Path) -> Runner:
    if options.runner == "kubernetes":
        return KubernetesRunner(load_template(options.job_template), kubectl=options.kubectl,
                                namespace=options.namespace)
    return SubprocessRunner(state_dir / "logs")


class RetrainTrigger:
    """The monitor's one object for retraining: each window, fold in whether a run is going (the lock),
    decide, and start a run when due. ``is_running`` is the Redis lock's holder check; the cooldown
    starts from ``last_run_ended_at`` (read from Redis at start-up, so a restarted monitor keeps it)."""

    def __init__(self, policy: TriggerPolicy, runner: Runner, is_running: Callable[[], bool],
                 state: TriggerState | None = None, *, on_started: Callable[[str, str], Any] | None = None) -> None:
        self.policy, self.runner, self.is_running = policy, runner, is_running
        self.on_started = on_started  # (reason, what was started): the audit trail's record of the trigger
        self.state = state or TriggerState()
        self.last_started: str | None = None

    def on_window(self, signal: WindowSignal, now: float | None = None) -> tuple[TriggerDecision, str | None]:
        """The decision for this window, and what was started (None when nothing was)."""
        now = time.time() if now is None else now
        self.state = observe_run(self.state, self.is_running(), now)
        decision, self.state = evaluate(self.policy, self.state, signal, now)
        if not decision.retrain:
            return decision, None
        try:
            started = maybe_retrain(decision, self.runner)
        except (UserError, OSError) as exc:
            # The trigger is counted (debounce): the next try comes after it, not every window.
            return dataclasses.replace(decision, retrain=False,
                                       reason=f"could not start the run ({exc}); wanted: {decision.reason}"), None
        self.last_started = started
        if self.on_started is not None and started is not None:
            self.on_started(decision.reason, started)
        return decision, started


def trigger_from(options: RetrainOptions, *, state_dir: Path, redis: RedisSettings) -> RetrainTrigger:
    """Wired from settings: the runner the options name, the Redis lock as 'already running', and the
    last run's end (from Redis) as where the cooldown starts."""
    from forewarn.retraining.lock import RetrainLock, is_running, lock_key, read_last_run, redis_client

    client = redis_client(redis)
    key_prefix = redis.key_prefix
    probe = RetrainLock(client, lock_key(key_prefix), owner="monitor-probe")
    state = TriggerState()
    try:
        last = read_last_run(client, key_prefix)
    except Exception:  # noqa: BLE001 - Redis away at start-up: no cooldown known, the lock still guards
        last = None
    if last is not None and isinstance(last.get("ended_at_s"), int | float):
        state = TriggerState(last_run_ended_at=float(last["ended_at_s"]))
    return RetrainTrigger(policy_from(options), runner_from(options, state_dir), lambda: is_running(probe), state,
                          on_started=audit_trigger)


def audit_trigger(reason: str, started: str) -> None:
    """The monitor started a run by itself: on the trail with the monitor as the actor. A trail that cannot
    be written is logged, not raised: the run is started, and it records itself when it begins."""
    import logging

    from forewarn.audit import actions as audit

    try:
        audit.retraining_triggered(audit.default_trail(), "monitor", reason=reason, started=started)
    except (OSError, UserError, ValueError) as exc:
        logging.getLogger(__name__).error("audit record of a retraining trigger not written: %s", exc)
