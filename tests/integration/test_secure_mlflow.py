"""MLflow on the secure profile: HTTPS with basic auth; nobody may move an alias without the right to.

The clients are configured the way every process of the project is (``secure.client_env``): the MLflow
client reads MLFLOW_TRACKING_USERNAME / PASSWORD / SERVER_CERT_PATH from the environment itself.
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"
CREATE_VERSION_PATH = "/api/2.0/mlflow/model-versions/create"


def _as(monkeypatch: pytest.MonkeyPatch, settings: object, principal: str) -> None:
    from forewarn.stack import secure

    for name, value in secure.client_env(settings, principal).items():  # type: ignore[arg-type]
        monkeypatch.setenv(name, value)


def test_secure_mlflow_refuses_what_each_user_may_not_do(secure_stack: object, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from forewarn.stack import secure, secure_mlflow
    from forewarn.stack.manager import LocalStack

    assert isinstance(secure_stack, LocalStack)
    settings = secure_stack.settings
    uri = secure_mlflow.tracking_uri(settings)
    assert uri.startswith("https://")
    name = f"test-secure-{uuid.uuid4().hex[:10]}"

    # Plain HTTP to the TLS port gets no answer a client could take for MLflow's.
    with pytest.raises(httpx.HTTPError):
        httpx.get(uri.replace("https://", "http://") + "/health", timeout=5).raise_for_status()

    # The promoter (the training chain) logs a run, registers a version and moves the alias.
    _as(monkeypatch, settings, "retrain")
    promoter = MlflowClient(uri)
    experiment_id = promoter.create_experiment(f"{name}-exp")
    run = promoter.create_run(experiment_id)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("0.5\n")
    promoter.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    promoter.set_terminated(run.info.run_id)
    promoter.create_registered_model(name)
    version = promoter.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    promoter.set_registered_model_alias(name, "champion", version.version)

    alias_change = {"name": name, "alias": "champion", "version": version.version}
    with secure_mlflow.http_client(settings, None) as anonymous:
        assert anonymous.get("/health").status_code == 200  # open, for probes
        assert anonymous.post(ALIAS_PATH, json=alias_change).status_code == 401
    with secure_mlflow.http_client(settings, secure_mlflow.READER) as reader_http:
        assert reader_http.post(ALIAS_PATH, json=alias_change).status_code == 403
        assert reader_http.delete(ALIAS_PATH, params={"name": name, "alias": "champion"}).status_code == 403
        new_version = {"name": name, "source": f"{run.info.artifact_uri}/model", "run_id": run.info.run_id}
        assert reader_http.post(CREATE_VERSION_PATH, json=new_version).status_code == 403
    ca = ssl.create_default_context(cafile=str(secure.local_ca(settings).cert))
    with httpx.Client(base_url=uri, auth=(secure_mlflow.PROMOTER, "wrong-password"), timeout=10, verify=ca) as wrong:
        assert wrong.post(ALIAS_PATH, json=alias_change).status_code == 401

    # A service (reader) loads the champion's metadata and files, as the scorer does.
    _as(monkeypatch, settings, "scorer")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # models:/ URIs resolve through the registry URI
    reader = MlflowClient(uri)
    champion = reader.get_model_version_by_alias(name, "champion")
    assert champion.version == version.version
    # Earlier tests in the session may have set MLflow's process-wide URIs (which beat the env variable):
    # point both at the secure server for this download, then put them back.
    import mlflow

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        local = download_artifacts(f"models:/{name}@champion", dst_path=str(tmp_path / "loaded"))
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    assert (Path(local) / "weights.txt").read_text() == "0.5\n"
    assert reader.get_registered_model(name).aliases == {"champion": version.version}
    # The monitor (a reader too) logs drift-report runs beside the training run and prunes old ones.
    report = reader.create_run(experiment_id, tags={"kind": "drift-report"})
    reader.log_metric(report.info.run_id, "drift_share.vibration", 0.1)
    reader.delete_run(report.info.run_id)
