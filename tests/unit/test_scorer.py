"""The scorer's pure parts: scoring rows, explanations, model swaps, and the HTTP edge with fakes."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from fastapi.testclient import TestClient

from forewarn.access import DEV_ROLE_KEYS, Role
from forewarn.model_bundle import ModelBundle, NoChampion
from forewarn.schemas import FeatureVector
from forewarn.services.scorer.app import create_app
from forewarn.services.scorer.model_watch import ModelHolder
from forewarn.services.scorer.scoring import score_rows
from forewarn.services.scorer.settings import ScorerSettings

VIEWER = {"X-API-Key": DEV_ROLE_KEYS[Role.VIEWER]}
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
    client = TestClient(create_app(holder, FakeStore({}), ScorerSettings(environment="development").access()),
                        headers=VIEWER)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "train and promote" in ready.json()["reason"]
    assert client.post("/v1/score", json=[]).status_code == 503


def test_api_scores_on_demand_and_in_batches(holder: ModelHolder) -> None:
    holder.refresh()
    store = FakeStore({"a": FeatureVector.model_validate(_vector("a", 3.0))})
    client = TestClient(create_app(holder, store, ScorerSettings(environment="development").access()),
                        headers=VIEWER)
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


# --- the compiled model (lleaves) -----------------------------------------------------------------------


def _booster_with_missing_and_categories(seed: int = 3, **params) -> lgb.Booster:
    """A model that splits on missing values and on a categorical feature (column 2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 4))
    x[:, 2] = rng.integers(0, 8, size=len(x))
    x[rng.random(x.shape) < 0.15] = np.nan
    y = ((np.nan_to_num(x[:, 0], nan=2.0) + (x[:, 2] == 3) + 0.3 * rng.normal(size=len(x))) > 0.8).astype(int)
    return lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "seed": seed, "num_leaves": 15,
                      "min_data_per_group": 5, "cat_smooth": 1, **params},
                     lgb.Dataset(x, y, categorical_feature=[2]), num_boost_round=30)


def _random_rows(width: int, rows: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.normal(scale=2.0, size=(rows, width))
    x[:, 2] = rng.integers(-1, 10, size=rows)  # categories, unseen ones and a negative (missing) one
    x[rng.random(x.shape) < 0.2] = np.nan
    # LightGBM reads |x| <= 1e-35 as zero, where its thresholds around zero sit
    tiny = rng.random(x.shape) < 0.05
    x[tiny] = rng.choice([0.0, -0.0, 5e-36, -5e-36, 1.0000000180025095e-35, -1.0000000180025095e-35, 2e-35, -2e-35],
                         size=int(tiny.sum()))
    x[:50] = np.nan
    return x


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_compiled_predictions_equal_booster_predict_with_missing_values_and_categories(tmp_path, params) -> None:
    from forewarn.model_bundle import compile_booster

    booster = _booster_with_missing_and_categories(**params)
    compiled = compile_booster(booster, tmp_path)
    rows = _random_rows(booster.num_feature())
    assert np.isnan(rows).any()
    np.testing.assert_allclose(compiled.predict(rows), booster.predict(rows, num_threads=1), rtol=0, atol=1e-9)


def test_compiled_bundle_scores_like_the_booster(tmp_path) -> None:
    plain, compiled = _bundle(calibrated=True), _bundle(calibrated=True)
    compiled.compile(tmp_path)
    assert compiled.compiled is not None and compiled.compiled_rul is not None
    rows = [_vector(str(i), v) for i, v in enumerate([*np.linspace(-3, 3, 40), None])]
    expected = score_rows(plain, rows, explain_above=0.5, top_k=2)
    actual = score_rows(compiled, rows, explain_above=0.5, top_k=2)
    for want, got in zip(expected, actual, strict=True):
        assert abs(got["p_failure"] - want["p_failure"]) <= 1e-9 and abs(got["rul"] - want["rul"]) <= 1e-9
        assert got["top_contributors"] == want["top_contributors"]  # evidence still from the Booster


def test_compiled_model_is_cached_by_model_hash(tmp_path) -> None:
    from forewarn.model_bundle import compile_booster

    booster = _booster_with_missing_and_categories()
    first = compile_booster(booster, tmp_path)
    again = compile_booster(booster, tmp_path)
    assert not first.cached and again.cached and first.key == again.key
    assert [p.name for p in tmp_path.iterdir()] == [f"{first.key}.o"]  # no scratch file left behind
    other = compile_booster(_booster_with_missing_and_categories(seed=4), tmp_path)
    assert other.key != first.key and len(list(tmp_path.glob("*.o"))) == 2
    rows = _random_rows(booster.num_feature())
    np.testing.assert_allclose(again.predict(rows), booster.predict(rows), rtol=0, atol=1e-9)


def test_a_wrong_cached_object_is_refused_and_removed(tmp_path) -> None:
    """lleaves loads a cached object without checking it; the probe rows catch one that is not this model."""
    from forewarn.model_bundle import CompileError, compile_booster

    right, wrong = _booster_with_missing_and_categories(seed=3), _booster_with_missing_and_categories(seed=4)
    key = compile_booster(right, tmp_path).key
    wrong_key = compile_booster(wrong, tmp_path).key
    (tmp_path / f"{key}.o").write_bytes((tmp_path / f"{wrong_key}.o").read_bytes())
    with pytest.raises(CompileError, match="does not reproduce"):
        compile_booster(right, tmp_path)
    assert not (tmp_path / f"{key}.o").exists()
    assert not compile_booster(right, tmp_path).cached  # compiled afresh


def test_a_model_lleaves_gets_wrong_falls_back_to_the_booster(tmp_path, caplog) -> None:
    """Linear trees: lleaves compiles them as constant leaves; the probe rows catch it."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "linear_tree": True},
                        lgb.Dataset(x, 3 * x[:, 0] + x[:, 1], feature_name=NAMES), num_boost_round=10)
    bundle = ModelBundle(booster=booster, name="m", version="1", feature_names=NAMES)
    with caplog.at_level("WARNING", logger="forewarn.model_bundle"):
        bundle.compile(tmp_path)
    assert bundle.compiled is None
    assert "not compiled" in caplog.text and "does not reproduce Booster.predict" in caplog.text
    assert list(tmp_path.iterdir()) == []
    np.testing.assert_array_equal(bundle.predict(x), booster.predict(x))


@pytest.mark.parametrize("failure", ["import", "compile"])
def test_compilation_failure_falls_back_with_a_logged_reason(tmp_path, caplog, monkeypatch, failure) -> None:
    import sys

    if failure == "import":
        monkeypatch.setitem(sys.modules, "lleaves", None)  # as if not installed
    else:
        import lleaves

        def broken(*_args, **_kwargs) -> None:
            raise RuntimeError("LLVM ran out of luck")

        monkeypatch.setattr(lleaves.Model, "compile", broken)
    bundle = _bundle()
    with caplog.at_level("WARNING", logger="forewarn.model_bundle"):
        bundle.compile(tmp_path)
    assert bundle.compiled is None and bundle.compiled_rul is None
    assert ("lleaves is not importable" if failure == "import" else "LLVM ran out of luck") in caplog.text
    assert list(tmp_path.iterdir()) == []
    x = np.array([[3.0, 0.0, 1.0], [np.nan, 1.0, np.nan]])
    np.testing.assert_array_equal(bundle.predict(x), bundle.booster.predict(x))
    np.testing.assert_array_equal(bundle.predict_rul(x), np.maximum(bundle.rul_booster.predict(x), 0))


def test_payloads_are_the_records_as_orjson_writes_them() -> None:
    """risk.scores keeps its wire format: each payload is byte for byte orjson.dumps(record)."""
    import orjson

    from forewarn.services.scorer.scoring import score_block
    from forewarn.vector_codec import VectorBlock

    bundle = _bundle(version="7%s")
    bundle.name = 'odd "name" %d'
    ids = ['plain', 'quote"d', 'comma,"x"', "back\\slash", "ünï", "per%cent", "a\",", "tab\tnew\nline"]
    n = len(ids)
    matrix = np.column_stack([np.linspace(-3, 3, n), np.zeros(n), np.full(n, np.nan)])
    for sites, ingested in [(None, None), (["s1", None, "s%2", "s1", "s1", None, "x", "y"], np.arange(n) * 1000)]:
        block = VectorBlock("pump", "v1", NAMES, ids, np.arange(n, dtype=np.int64) * 10**12, matrix, sites=sites,
                            ingested_at=ingested)
        scored = score_block(bundle, block, explain_above=0.5, top_k=2)
        records = scored.records()
        assert scored.explained == sum(1 for r in records if r["top_contributors"]) > 0
        assert scored.payloads() == [orjson.dumps(r) for r in records]
        assert [orjson.loads(p)["machine_id"] for p in scored.payloads()] == ids
    empty = score_block(bundle, VectorBlock("pump", "v1", NAMES, [], np.zeros(0, dtype=np.int64),
                                            np.zeros((0, 3))), explain_above=0.5, top_k=2)
    assert empty.records() == [] and empty.payloads() == []
