"""The deploy files checked by real tools, offline: every kustomization rendered by the real kubectl and
validated against Kubernetes' JSON schemas (kubernetes-validate) and KEDA's CRD schema, docker-compose.yml
against the Compose Specification, the Terraform of infra/terraform parsed (python-hcl2) with every
reference resolved, and the GitHub workflows linted by actionlint. The policy scan (checkov) is slower
and lives in tests/integration/test_deploy_policy.py.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = ROOT / "tests" / "schemas"
TERRAFORM = ROOT / "infra" / "terraform"
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
# Every kustomization a person can apply or build on: the base and each overlay.
RENDER_TARGETS = ["base"] + sorted(
    f"overlays/{p.name}" for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file()
)
# Custom resources: (apiVersion, kind) -> the CRD schema the tests hold for it.
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda" / "scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS / "keda" / "triggerauthentication.json",
}


def _tool(name: str) -> str:
    """A tool the dev extra installs into the venv (never a skip, never another copy on PATH)."""
    path = BIN / name
    assert path.is_file(), f"{path} is missing: run `make setup`"
    return str(path)


@functools.cache
def _rendered(target: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [_tool("kubectl"), "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize {target}: {proc.stderr}"
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def _hcl(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open(encoding="utf-8") as fh:
        return hcl2.load(fh)  # type: ignore[no-any-return]


def _unquote(key: str) -> str:
    return key.strip('"')


def _cluster_version() -> str:
    """The Kubernetes version the manifests must fit: the EKS version infra/terraform creates."""
    (block,) = [v for v in _hcl(TERRAFORM / "variables.tf")["variable"] if '"kubernetes_version"' in v]
    return _unquote(block['"kubernetes_version"']["default"])


def _k8s_problems(doc: dict[str, Any], version: str) -> list[str]:
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    crd = CRD_SCHEMAS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if crd is not None:
        schema = json.loads(crd.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        return [f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {doc.get('apiVersion')} {doc.get('kind')} (add its CRD schema to CRD_SCHEMAS)"]
    except kubernetes_validate.ValidationError as err:
        return [f"{name}: {'/'.join(map(str, err.path))}: {err.message}"]
    return []


# ---- Kubernetes: render + schema validation ------------------------------------------------------


def test_kubectl_is_the_venvs_real_binary() -> None:
    proc = subprocess.run([_tool("kubectl"), "version", "--client", "-o", "json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["clientVersion"]["major"] == "1" and info["kustomizeVersion"].startswith("v5")


@pytest.mark.parametrize("target", RENDER_TARGETS)
def test_kustomization_renders_to_valid_objects(target: str) -> None:
    docs = _rendered(target)
    assert docs, f"{target} renders nothing"
    version = _cluster_version()
    problems = [p for d in docs for p in _k8s_problems(d, version)]
    assert not problems, "\n".join(problems)


def test_prod_keda_objects_are_validated_against_the_crd_schema() -> None:
    scaled = [d for d in _rendered("overlays/prod") if d["kind"] == "ScaledObject"]
    assert {d["metadata"]["name"] for d in scaled} == {"features", "scorer"}


def test_the_validators_reject_what_the_api_server_would() -> None:
    """Controls: the checks above would fail on a broken object, for both kinds of schema."""
    docs = _rendered("overlays/prod")
    version = _cluster_version()
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    deployment["spec"]["replicass"] = 2
    assert len(_k8s_problems(deployment, version)) >= 1
    scaled = copy.deepcopy(next(d for d in docs if d["kind"] == "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000  # KEDA takes strings only
    assert any("lagThreshold" in p for p in _k8s_problems(scaled, version))
    scaled["spec"]["maxReplicas"] = 3
    assert any("maxReplicas" in p for p in _k8s_problems(scaled, version))
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert any("no schema" in p for p in _k8s_problems(unknown, version))


# ---- docker-compose: the Compose Specification ---------------------------------------------------


def _compose_errors(doc: Any) -> list[str]:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_follows_the_compose_specification() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert not _compose_errors(compose)
    broken = copy.deepcopy(compose)
    broken["services"]["scorer"]["ports"] = "127.0.0.1:8001:8001"
    broken["services"]["scorer"]["restart_policy"] = "always"
    errors = _compose_errors(broken)
    assert any("restart_policy" in e for e in errors), "the schema must catch an unknown key"
    assert any("ports" in e for e in errors), "the schema must catch a wrong type"


def test_compose_keeps_grafana_provisioned_from_deploy_grafana() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = {v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    assert {"./deploy/grafana/provisioning", "./deploy/grafana/dashboards"} <= mounts


# ---- Terraform: parsed, every reference declared ------------------------------------------------

_REF = re.compile(r"(?<![\w.])(var|local|module|data\.\w+|(?:aws|random|kubernetes|kustomization)_\w+)\.(\w+)")


@functools.cache
def _terraform() -> dict[Path, dict[str, Any]]:
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert files, "infra/terraform holds no .tf file"
    return {f: _hcl(f) for f in files}


def _declared(module_dir: Path) -> tuple[set[str], list[str]]:
    """Names a module declares ('var.x', 'local.y', 'module.z', 'data.t.n', 't.n') and its expressions."""
    names: set[str] = set()
    texts: list[str] = []
    for path, doc in _terraform().items():
        if path.parent != module_dir:
            continue
        for block in doc.get("variable", []):
            names |= {f"var.{_unquote(k)}" for k in block}
        for block in doc.get("locals", []):
            names |= {f"local.{k}" for k in block if not k.startswith("__")}
        for block in doc.get("module", []):
            names |= {f"module.{_unquote(k)}" for k in block}
        for kind, prefix in (("resource", ""), ("data", "data.")):
            for block in doc.get(kind, []):
                for rtype, instances in block.items():
                    names |= {f"{prefix}{_unquote(rtype)}.{_unquote(n)}" for n in instances}
        texts.append(json.dumps({k: v for k, v in doc.items() if k != "variable"}))
    return names, texts


def _module_dirs() -> list[Path]:
    return sorted({p.parent for p in _terraform()})


@pytest.mark.parametrize("module_dir", _module_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_terraform_references_resolve_and_every_variable_is_used(module_dir: Path) -> None:
    names, texts = _declared(module_dir)
    refs = {".".join(m.groups()) for text in texts for m in _REF.finditer(text)}
    # A data reference's first segment is "data.<type>": join it as declared.
    missing = sorted(r for r in refs if r not in names)
    assert not missing, f"undeclared references in {module_dir.relative_to(ROOT)}: {missing}"
    unused = sorted(n for n in names if n.startswith("var.") and n not in refs)
    assert not unused, f"declared but unused variables: {unused}"
    for path, doc in _terraform().items():
        for block in doc.get("variable", []) + doc.get("output", []):
            for name, body in block.items():
                assert body.get("description"), f"{path.name}: {name} has no description"


def test_terraform_creates_the_production_environment() -> None:
    resources: dict[str, dict[str, Any]] = {}
    for doc in _terraform().values():
        for block in doc.get("resource", []):
            for rtype, instances in block.items():
                for name, body in instances.items():
                    resources[f"{_unquote(rtype)}.{_unquote(name)}"] = body
    for required in (
        "aws_eks_cluster.main",
        "aws_eks_node_group.main",
        "aws_msk_cluster.main",
        "aws_elasticache_replication_group.main",
        "aws_kms_key.main",
        "kustomization_resource.p1",
    ):
        assert required in resources, f"{required} missing"
    assert resources["aws_kms_key.main"]["enable_key_rotation"] is True
    redis = resources["aws_elasticache_replication_group.main"]
    assert redis["transit_encryption_enabled"] is True and redis["at_rest_encryption_enabled"] is True
    assert "random_password.redis" in redis["auth_token"]
    msk = resources["aws_msk_cluster.main"]
    assert msk["encryption_info"][0]["encryption_in_transit"][0]["client_broker"] == '"TLS"'
    assert msk["client_authentication"][0]["unauthenticated"] is False
    eks = resources["aws_eks_cluster.main"]
    assert eks["encryption_config"][0]["resources"] == ['"secrets"']

    bucket = _terraform()[TERRAFORM / "modules" / "bucket" / "main.tf"]["resource"]
    bucket_types = {_unquote(t) for block in bucket for t in block}
    assert {
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
    } <= bucket_types
    storage = _terraform()[TERRAFORM / "storage.tf"]["module"]
    assert {_unquote(k) for block in storage for k in block} >= {"lake", "artifacts"}

    # The Kubernetes deployment on top is the prod overlay this repository renders and checks.
    (overlay,) = [
        body
        for block in _terraform()[TERRAFORM / "kubernetes.tf"]["data"]
        for name, body in block.get('"kustomization_overlay"', {}).items()
        if name == '"prod"'
    ]
    path = _unquote(overlay["resources"][0]).replace("${path.module}", str(TERRAFORM))
    assert Path(path).resolve() == (K8S / "overlays" / "prod").resolve()


def _heredoc(value: str) -> str:
    """The text of an HCL `<<-EOF` heredoc as python-hcl2 returns it (quoted, marker lines kept)."""
    body = _unquote(value).split("\n", 1)[1].rsplit("\n", 1)[0]
    return textwrap.dedent(body)


def test_terraform_kustomization_renders_the_managed_variant_of_prod(tmp_path: Path) -> None:
    """The kustomization that kubernetes.tf gives the kbst provider, rendered by the real kustomize: every
    service reads the forewarn-managed Secret, and the in-cluster Kafka and Redis are gone."""
    (overlay,) = [
        body
        for block in _terraform()[TERRAFORM / "kubernetes.tf"]["data"]
        for name, body in block.get('"kustomization_overlay"', {}).items()
    ]
    prod = K8S / "overlays" / "prod"
    patches = []
    for entry in overlay["patches"]:
        patch: dict[str, Any] = {"patch": _heredoc(entry["patch"])}
        if "target" in entry:
            patch["target"] = {k: _unquote(v) for k, v in entry["target"][0].items() if not k.startswith("__")}
        patches.append(patch)
    kustomization = {"resources": [os.path.relpath(prod, tmp_path)], "patches": patches}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    proc = subprocess.run(
        [_tool("kubectl"), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "StatefulSet"], "in-cluster Kafka/Redis left"
    services = {"ingest", "features", "scorer", "alerter", "monitor"}
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"] in services:
            env_from = d["spec"]["template"]["spec"]["containers"][0]["envFrom"]
            assert env_from[-1] == {"secretRef": {"name": "forewarn-managed"}}, d["metadata"]["name"]
            assert any("configMapRef" in e for e in env_from[:-1]), "the Secret must come after forewarn-config"
            services.discard(d["metadata"]["name"])
    assert not services, f"not patched: {services}"
    version = _cluster_version()
    problems = [p for d in docs for p in _k8s_problems(d, version)]
    assert not problems, "\n".join(problems)


def test_terraform_outputs_used_by_the_deployment_guide() -> None:
    outputs = {_unquote(k) for block in _terraform()[TERRAFORM / "outputs.tf"]["output"] for k in block}
    guide = (ROOT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    used = set(re.findall(r"terraform output -raw (\w+)", guide))
    assert used, "docs/DEPLOYMENT.md reads no terraform output"
    assert used <= outputs, f"docs/DEPLOYMENT.md reads outputs that do not exist: {sorted(used - outputs)}"


# ---- checkov: every skip says why ---------------------------------------------------------------


def test_every_checkov_skip_has_a_reason() -> None:
    config_lines = (ROOT / "infra" / "checkov" / "k8s.yaml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(config_lines):
        if re.match(r"\s*- CKV", line):
            assert config_lines[i - 1].strip().startswith("#"), f"skip without a reason comment: {line.strip()}"
    inline = [
        line
        for path in sorted(TERRAFORM.rglob("*.tf")) + sorted(K8S.rglob("*.yaml"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "checkov:skip=" in line or "checkov.io/skip" in line
    ]
    assert inline
    for line in inline:
        assert re.search(r"CKV2?_[A-Z0-9_]+[:=]\S.{10,}", line), f"inline skip without a reason: {line.strip()}"


# ---- GitHub workflows ----------------------------------------------------------------------------


def _workflow(name: str) -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def test_actionlint_passes_on_every_workflow() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    proc = subprocess.run([_tool("actionlint"), "-oneline", *files], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_lint_unit_the_suite_images_and_terraform_validate() -> None:
    jobs = _workflow("ci.yml")["jobs"]
    assert {"lint", "unit", "test", "images", "terraform"} <= jobs.keys()
    runs = {name: " ".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "make lint" in runs["lint"] and "make test-unit" in runs["unit"] and "make test" in runs["test"]
    assert set(jobs["test"]["needs"]) == {"lint", "unit"}
    assert "terraform init -backend=false" in runs["terraform"] and "terraform validate" in runs["terraform"]
    services = {m["service"] for m in jobs["images"]["strategy"]["matrix"]["include"]}
    assert services == {p.parent.name for p in (ROOT / "services").glob("*/__init__.py")}


def test_release_pushes_images_on_a_tag_and_deploys_prod_after_approval() -> None:
    release = _workflow("release.yml")
    assert release["on"]["push"]["tags"] and "branches" not in release["on"]["push"]
    images, deploy = release["jobs"]["images"], release["jobs"]["deploy"]
    assert images["permissions"]["packages"] == "write"
    assert any(s.get("with", {}).get("push") is True for s in images["steps"])
    assert "ghcr.io" in release["env"]["REGISTRY"]
    assert deploy["needs"] == "images" and deploy["environment"]["name"] == "production"
    script = " ".join(s.get("run", "") for s in deploy["steps"])
    assert "../prod" in script and "kubectl apply" in script and "rollout status" in script


def test_model_promotion_runs_forewarn_promote_in_the_production_environment() -> None:
    promote = _workflow("promote-model.yml")
    assert "workflow_dispatch" in promote["on"] and set(promote["on"]) == {"workflow_dispatch"}
    (job,) = promote["jobs"].values()
    assert job["environment"]["name"] == "production"
    assert any(s.get("run", "").startswith("forewarn promote ") for s in job["steps"])
