"""The scorer's pure parts: scoring rows, explanations, model swaps, and the HTTP edge with fakes."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from fastapi.testclient import TestClient

from forewarn.model_bundle import ModelBundle, NoChampion
from forewarn.schemas import FeatureVector
from forewarn.services.scorer.app import create_app
from forewarn.services.scorer.model_watch import ModelHolder
from forewarn.services.scorer.scoring import score_rows

NAMES = ["vibration__10m__mean", "temperature__10m__slope", "gap_ms"]


def _bundle(version: str = "1", calibrated: bool = False) -> ModelBundle:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    y = (x[:, 0] + 0.2 * rng.normal(size=500) > 1.0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1},
                        lgb.Dataset(x, y, feature_name=NAMES), num_boost_round=20)
    rul = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "seed": 1},
                    lgb.Dataset(x, 100 - 30 * x[:, 0], feature_name=NAMES), num_boost_round=20)
    calibration = (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.2, 1.0])) if calibrated else None
    return ModelBundle(booster=booster, name="m", version=version, feature_names=NAMES, horizon="24h",
                       calibration=calibration, rul_booster=rul)


def _vector(machine: str, vibration: float | None) -> dict:
    return {"machine_id": machine, "machine_type": "pump", "ts": 1000, "feature_set_version": "v1",
            "features": {"vibration__10m__mean": vibration, "temperature__10m__slope": 0.0}, "site": "s1"}


def test_scores_name_model_and_explain_only_risky_rows() -> None:
    bundle = _bundle()
    scores = score_rows(bundle, [_vector("a", 3.0), _vector("b", -3.0)], explain_above=0.5, top_k=2)
    assert [s["machine_id"] for s in scores] == ["a", "b"]
    assert scores[0]["p_failure"] > 0.5 > scores[1]["p_failure"]
    assert all(s["model_version"] == "1" and s["model_name"] == "m" for s in scores)
    assert scores[0]["top_contributors"][0]["sensor"] == "vibration"
    assert scores[0]["top_contributors"][0]["value"] == 3.0
    assert scores[1]["top_contributors"] == []
    assert scores[0]["rul"] < scores[1]["rul"]


def test_alignment_puts_columns_in_model_order_and_absent_ones_as_nan() -> None:
    bundle = _bundle()
    names = ["temperature__10m__slope", "extra", "vibration__10m__mean"]
    aligned = bundle.align(names, np.array([[1.0, 9.0, 2.0]]))
    assert aligned[0, :2].tolist() == [2.0, 1.0] and np.isnan(aligned[0, 2])


def test_null_features_score_like_missing_ones() -> None:
    bundle = _bundle()
    with_null = score_rows(bundle, [_vector("a", None)], explain_above=1, top_k=1)[0]["p_failure"]
    vector = _vector("a", None)
    del vector["features"]["vibration__10m__mean"]
    without = score_rows(bundle, [vector], explain_above=1, top_k=1)[0]["p_failure"]
    assert with_null == without


def test_calibration_maps_probabilities_monotonically() -> None:
    raw, calibrated = _bundle(), _bundle(calibrated=True)
    rows = [_vector(str(i), v) for i, v in enumerate(np.linspace(-3, 3, 20))]
    p_raw = np.array([s["p_failure"] for s in score_rows(raw, rows, explain_above=1, top_k=1)])
    p_cal = np.array([s["p_failure"] for s in score_rows(calibrated, rows, explain_above=1, top_k=1)])
    np.testing.assert_allclose(p_cal, np.interp(p_raw, [0, 0.5, 1], [0, 0.2, 1]))


def test_holder_swaps_only_when_the_alias_moves() -> None:
    alias = {"version": None}
    loads: list[str] = []

    def lookup() -> str:
        if alias["version"] is None:
            raise NoChampion("no champion yet; train and promote one")
        return alias["version"]

    def loader(version: str) -> ModelBundle:
        loads.append(version)
        return _bundle(version)

    holder = ModelHolder(lookup, loader)
    assert holder.refresh() is False and holder.current is None
    assert "train and promote" in holder.not_ready_reason
    alias["version"] = "1"
    assert holder.refresh() is True and holder.current.version == "1"
    assert holder.refresh() is False
    alias["version"] = "2"
    assert holder.refresh() is True and holder.current.version == "2"
    assert loads == ["1", "2"]


class FakeStore:
    def __init__(self, vectors: dict[str, FeatureVector]) -> None:
        self.vectors = vectors

    def write(self, vectors) -> None:  # pragma: no cover - not used by the API
        raise NotImplementedError

    def read(self, machine_id: str) -> FeatureVector | None:
        return self.vectors.get(machine_id)


@pytest.fixture
def holder() -> ModelHolder:
    holder = ModelHolder(lambda: "7", lambda v: _bundle(v))
    return holder


def test_api_is_not_ready_without_a_champion() -> None:
    def lookup() -> str:
        raise NoChampion("no model version of 'm' has the alias 'champion'; train and promote one")

    holder = ModelHolder(lookup, _bundle)
    holder.refresh()
    client = TestClient(create_app(holder, FakeStore({})))
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "train and promote" in ready.json()["reason"]
    assert client.post("/v1/score", json=[]).status_code == 503


def test_api_scores_on_demand_and_in_batches(holder: ModelHolder) -> None:
    holder.refresh()
    store = FakeStore({"a": FeatureVector.model_validate(_vector("a", 3.0))})
    client = TestClient(create_app(holder, store))
    assert client.get("/readyz").status_code == 200
    risk = client.get("/v1/machines/a/risk").json()
    assert risk["model_version"] == "7" and risk["top_contributors"]
    missing = client.get("/v1/machines/zzz/risk")
    assert missing.status_code == 404 and "zzz" in missing.json()["detail"]
    odd = _vector("c", 3.0)
    odd["features"] = {"temperature__10m__slope": 0.0, "vibration__10m__mean": 3.0}
    batch = client.post("/v1/score", json=[_vector("a", 3.0), _vector("b", -3.0), odd]).json()
    assert [s["machine_id"] for s in batch] == ["a", "b", "c"]
    assert batch[2]["p_failure"] == batch[0]["p_failure"]
    assert client.post("/v1/score", json=[{"machine_id": "x"}]).status_code == 422
