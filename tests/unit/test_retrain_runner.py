"""How the monitor starts a run: maybe_retrain, the subprocess runner, the Kubernetes Job it builds,
and the retraining settings (FOREWARN_RETRAIN__*)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from forewarn.errors import UserError
from forewarn.retraining.lock import last_run_key, read_last_run, write_last_run
from forewarn.retraining.runner import (
    REASON_ANNOTATION,
    KubernetesRunner,
    RetrainTrigger,
    SubprocessRunner,
    build_job_manifest,
    load_template,
    maybe_retrain,
    policy_from,
    runner_from,
)
from forewarn.retraining.settings import RetrainOptions, RetrainSettings
from forewarn.retraining.trigger import TriggerDecision, TriggerPolicy, WindowSignal

TEMPLATE = Path(__file__).resolve().parents[2] / "k8s" / "base" / "retrain" / "job.yaml"
REASON = "sustained drift: 3 of the last 3 windows drifted"


class Recording:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def start(self, reason: str) -> str:
        self.reasons.append(reason)
        return "started"


def test_maybe_retrain_starts_only_when_the_decision_says_so() -> None:
    runner = Recording()
    assert maybe_retrain(TriggerDecision(False, "cooldown: ...", ("drift",), "cooldown"), runner) is None
    assert runner.reasons == []
    assert maybe_retrain(TriggerDecision(True, REASON, ("drift",)), runner) == "started"
    assert runner.reasons == [REASON]


def test_subprocess_runner_starts_a_detached_forewarn_retrain_with_a_log(tmp_path: Path) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def popen(argv: list[str], **kwargs: Any) -> SimpleNamespace:
        calls.append((argv, kwargs))
        return SimpleNamespace(pid=4242)

    runner = SubprocessRunner(tmp_path / "logs", env={"FOREWARN_KAFKA__TOPIC_PREFIX": "t."}, popen=popen)
    said = runner.start(REASON)
    ((argv, kwargs),) = calls
    assert argv == [sys.executable, "-m", "forewarn.cli", "retrain", "--reason", REASON]
    assert kwargs["start_new_session"] is True, "the run must outlive the monitor"
    assert kwargs["env"]["FOREWARN_RETRAIN__RUNNER"] == "subprocess"
    assert kwargs["env"]["FOREWARN_KAFKA__TOPIC_PREFIX"] == "t."
    (log,) = (tmp_path / "logs").glob("retrain-*.log")
    assert said == f"forewarn retrain (pid 4242), log {log}"


def test_the_job_from_the_shipped_template() -> None:
    template = load_template(TEMPLATE)
    job = build_job_manifest(template, REASON, stamp="20260107-101500", namespace="forewarn")
    assert job["kind"] == "Job" and job["metadata"]["name"] == "forewarn-retrain-20260107-101500"
    assert job["metadata"]["namespace"] == "forewarn"
    assert job["metadata"]["annotations"][REASON_ANNOTATION] == REASON
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["retrain", "--reason", REASON]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FOREWARN_RETRAIN__RUNNER"] == "kubernetes"
    assert env["FOREWARN_RETRAIN__LAKE_DIR"] == "/data/lake"
    assert [e["name"] for e in container["env"]].count("FOREWARN_RETRAIN__RUNNER") == 1
    assert {"configMapRef": {"name": "forewarn-config"}} in container["envFrom"]
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert template["spec"]["template"]["spec"]["containers"][0]["args"] != container["args"], "template untouched"


def test_job_names_are_valid_kubernetes_names() -> None:
    template = {"kind": "Job", "metadata": {"name": "Forewarn_Retrain" + "x" * 60},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
    name = build_job_manifest(template, "r", stamp="20260107-101500")["metadata"]["name"]
    assert len(name) <= 63 and name == name.lower() and "_" not in name and not name.endswith("-")


def test_a_template_that_is_no_job_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a Job"):
        build_job_manifest({"kind": "Deployment"}, "r", stamp="s")
    with pytest.raises(UserError, match="FOREWARN_RETRAIN__JOB_TEMPLATE"):
        load_template(tmp_path / "missing.yaml")
    two = tmp_path / "two.yaml"
    two.write_text("kind: Job\n---\nkind: Job\n")
    with pytest.raises(UserError, match="exactly one"):
        load_template(two)


def test_kubernetes_runner_pipes_the_job_to_kubectl_create() -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def run(argv: list[str], **kwargs: Any) -> SimpleNamespace:
        calls.append((argv, kwargs))
        return SimpleNamespace(returncode=0, stdout="job.batch/x created", stderr="")

    said = KubernetesRunner(load_template(TEMPLATE), kubectl="/usr/bin/kubectl", run=run).start(REASON)
    ((argv, kwargs),) = calls
    assert argv == ["/usr/bin/kubectl", "create", "-f", "-"]
    job = json.loads(kwargs["input"])
    assert said == f"Job {job['metadata']['name']}" and job["metadata"]["name"].startswith("forewarn-retrain-")

    def failing(argv: list[str], **kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(returncode=1, stdout="", stderr="forbidden: cannot create jobs")

    with pytest.raises(UserError, match="forbidden"):
        KubernetesRunner(load_template(TEMPLATE), run=failing).start(REASON)


def test_runner_from_the_options(tmp_path: Path) -> None:
    assert isinstance(runner_from(RetrainOptions(), tmp_path), SubprocessRunner)
    k8s = runner_from(RetrainOptions(runner="kubernetes", job_template=TEMPLATE, namespace="ns"), tmp_path)
    assert isinstance(k8s, KubernetesRunner) and k8s.namespace == "ns"


def test_settings_read_the_retrain_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_RETRAIN__RUNNER", "kubernetes")
    monkeypatch.setenv("FOREWARN_RETRAIN__COOLDOWN_S", "60")
    monkeypatch.setenv("FOREWARN_RETRAIN__SUSTAINED_WINDOWS", "5")
    monkeypatch.setenv("FOREWARN_RETRAIN__MIN_NEW_LABELS", "7")
    monkeypatch.setenv("FOREWARN_RETRAIN__LAKE_DIR", "/data/lake")
    monkeypatch.setenv("FOREWARN_RETRAIN__QUICK", "true")
    opts = RetrainSettings().retrain
    assert opts.runner == "kubernetes" and opts.lake_dir == Path("/data/lake") and opts.quick
    policy = policy_from(opts)
    assert (policy.cooldown_s, policy.sustained_windows, policy.min_new_labels) == (60.0, 5, 7)
    defaults = RetrainOptions()
    assert (defaults.cooldown_s, defaults.sustained_windows, defaults.min_new_labels) == (21600.0, 3, 100)


def _signal(i: int, drift: bool = True) -> WindowSignal:
    return WindowSignal(window_end_ts=i * 60_000, drift_active=drift, decay_active=False)


def test_retrain_trigger_starts_once_on_sustained_drift_then_waits_for_the_run() -> None:
    runner, running = Recording(), {"now": False}
    trigger = RetrainTrigger(TriggerPolicy(sustained_windows=3, cooldown_s=3600, debounce_s=60), runner,
                             lambda: running["now"])
    outcomes = [trigger.on_window(_signal(i), now=1000.0 + i) for i in range(3)]
    assert [started for _, started in outcomes] == [None, None, "started"]
    assert runner.reasons == ["sustained drift: 3 of the last 3 windows drifted"]
    running["now"] = True
    decision, started = trigger.on_window(_signal(3), now=1100.0)
    assert started is None and not decision.retrain and trigger.state.running
    running["now"] = False
    for i in range(4, 8):
        decision, started = trigger.on_window(_signal(i), now=1200.0 + i)
        assert started is None
    assert decision.blocked_by == "cooldown" and trigger.state.last_run_ended_at == 1204.0
    assert len(runner.reasons) == 1


def test_retrain_trigger_reports_a_runner_that_cannot_start() -> None:
    class Broken:
        def start(self, reason: str) -> str:
            raise UserError("kubectl create of Job x failed: forbidden")

    trigger = RetrainTrigger(TriggerPolicy(min_new_labels=10), Broken(), lambda: False)
    decision, started = trigger.on_window(WindowSignal(0, False, False, new_labels=10), now=5.0)
    assert started is None and not decision.retrain
    assert decision.reason.startswith("could not start the run (kubectl create of Job x failed: forbidden)")
    assert trigger.state.last_trigger_at == 5.0, "debounced: not retried every window"


def test_the_last_run_is_kept_beside_the_lock_for_the_cooldown() -> None:
    from tests.unit.test_retrain_lock import FakeRedis

    redis = FakeRedis()
    assert read_last_run(redis, "fw") is None
    write_last_run(redis, "fw", {"run_id": "r1", "decision": "refused", "ended_at_s": 123.5})
    assert last_run_key("fw") == "fw:retrain:last"
    assert read_last_run(redis, "fw") == {"decision": "refused", "ended_at_s": 123.5, "run_id": "r1"}
