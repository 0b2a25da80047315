"""Evidently HTML reports in MLflow, beside the champion's training run, a bounded number per version.

Each report is a run of its own in the champion's experiment (tags ``kind=drift-report``,
``model_version``, ``champion_run_id``, ``window``) holding one HTML file per judged machine type, so the
MLflow UI lists them next to the training run they judge. MLflow cannot delete single artifacts, so
bounding them means deleting the oldest report runs of that version.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from forewarn.monitoring import drift
from forewarn.monitoring.monitor import WindowResult
from forewarn.monitoring.reference import Reference

log = logging.getLogger(__name__)

REPORT_KIND = "drift-report"


class ReportLog:
    def __init__(self, tracking_uri: str, model_name: str, max_reports: int) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.max_reports = max_reports
        self.logged = 0

    def log(self, result: WindowResult, reference: Reference, version: str) -> str | None:
        """Log the window's reports; returns the report run's id (None when nothing was judged)."""
        if self.max_reports <= 0:
            return None
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        tags = dict(client.get_model_version(self.model_name, version).tags)
        champion_run = tags.get("train_run_id")
        # "0" is MLflow's Default experiment: a version registered by hand has no training run to sit beside.
        experiment_id = client.get_run(champion_run).info.experiment_id if champion_run else "0"
        judged = [t for t, d in result.drift.types.items() if d.judged and t in result.current]
        if not judged:
            return None
        run = client.create_run(experiment_id, run_name=f"drift-v{version}-w{result.window:05d}", tags={
            "kind": REPORT_KIND, "model_version": version, "model_name": self.model_name,
            "champion_run_id": champion_run or "", "window": str(result.window),
            "drifted": ",".join(t for t in judged if result.drift.types[t].active) or "none"})
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for type_name in judged:
                    html = drift.report_html(reference.features[type_name], result.current[type_name],
                                             reference.thresholds[type_name])
                    (Path(tmp) / f"drift-{type_name}.html").write_text(html, encoding="utf-8")
                client.log_artifacts(run.info.run_id, tmp, "evidently")
            for type_name in judged:
                client.log_metric(run.info.run_id, f"drift_share.{type_name}", result.drift.types[type_name].share)
            client.set_terminated(run.info.run_id)
        except Exception:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        self.logged += 1
        self._prune(client, experiment_id, version)
        return str(run.info.run_id)

    def _prune(self, client: Any, experiment_id: str, version: str) -> None:
        runs = client.search_runs([experiment_id], filter_string=(
            f"tags.kind = '{REPORT_KIND}' and tags.model_version = '{version}' "
            f"and tags.model_name = '{self.model_name}'"), order_by=["attributes.start_time DESC"],
            max_results=self.max_reports + 50)
        for old in runs[self.max_reports:]:
            client.delete_run(old.info.run_id)
