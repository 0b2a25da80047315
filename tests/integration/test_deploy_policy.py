"""checkov, the policy scanner, over what would be deployed: `kubectl kustomize` of every overlay and the
Terraform of infra/terraform, in one run (checkov takes ~10 s to start). Without a Prisma Cloud API key
checkov reports no severities, so the gate is stricter than "no HIGH or CRITICAL": every check passes
except the skips written, each with its reason, in infra/checkov/k8s.yaml and inline in the files
(tests/unit/test_deploy_validation.py checks that every skip has one; docs/DEPLOYMENT.md lists them).
checkov lives in its own venv under the state folder (scripts/setup.sh), away from the project's pins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".forewarn" / "tools" / "checkov" / "bin" / "checkov"
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").is_file())


def _checkov(args: list[str]) -> list[dict[str, Any]]:
    assert CHECKOV.is_file(), f"{CHECKOV} is missing: run `make setup`"
    # Offline: no guideline download, no call home.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run(
        [str(CHECKOV), *args, "--skip-download", "--compact", "--quiet", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (rc {proc.returncode}): {proc.stderr[-2000:]}"
    # One JSON document per -d target (an object for one framework, a list for several), back to back.
    reports: list[dict[str, Any]] = []
    decoder, text, pos = json.JSONDecoder(), proc.stdout, 0
    while pos < len(text.rstrip()):
        doc, end = decoder.raw_decode(text, pos)
        reports += doc if isinstance(doc, list) else [doc]
        pos = end + (len(text[end:]) - len(text[end:].lstrip()))
    return reports


def test_checkov_passes_on_the_rendered_overlays_and_the_terraform(tmp_path: Path) -> None:
    kubectl = Path(sys.executable).parent / "kubectl"
    rendered = tmp_path / "k8s"
    rendered.mkdir()
    for overlay in OVERLAYS:
        proc = subprocess.run(
            [str(kubectl), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (rendered / f"{overlay}.yaml").write_text(proc.stdout, encoding="utf-8")
    terraform = tmp_path / "terraform"
    shutil.copytree(ROOT / "infra" / "terraform", terraform, ignore=shutil.ignore_patterns(".terraform*"))

    # One process, two targets: the Kubernetes config's skips, and Terraform's inline skips.
    reports = _checkov(
        [
            "--config-file",
            str(ROOT / "infra" / "checkov" / "k8s.yaml"),
            "--framework",
            "kubernetes",
            "terraform",
            "-d",
            str(rendered),
            "-d",
            str(terraform),
        ]
    )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        by_type.setdefault(report["check_type"], []).append(report)
    assert {"kubernetes", "terraform"} <= by_type.keys(), f"checkov scanned only {sorted(by_type)}"
    for check_type, report in ((t, r) for t, rs in by_type.items() for r in rs):
        summary = report["summary"]
        if summary["resource_count"] == 0:  # a -d target without this framework's files
            continue
        assert summary["parsing_errors"] == 0, f"{check_type}: {summary}"
        assert summary["passed"] > 100, f"{check_type}: checkov ran almost no check: {summary}"
        failed = [
            f"{f['check_id']} {f['resource']} ({f.get('file_path')}): {f['check_name']}"
            for f in report["results"]["failed_checks"]
        ]
        assert not failed, f"{check_type}: checkov found\n" + "\n".join(failed)
    # The resources checkov saw include the ones that matter most (not an empty or half-parsed scan).
    for check_type, least in (("kubernetes", 60), ("terraform", 50)):
        seen = sum(r["summary"]["resource_count"] for r in by_type[check_type])
        assert seen >= least, f"{check_type}: checkov saw only {seen} resources"
