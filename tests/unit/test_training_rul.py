"""The RUL ensemble is deterministic for a seed and stays inside the RUL cap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forewarn.training.rul import RulEnsemble, RulModelConfig


def _data(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(400, 5)), columns=[f"f{i}" for i in range(5)])
    y = np.clip(60 + 40 * x["f0"].to_numpy() + rng.normal(0, 5, 400), 0, 125)
    return x, y


CONFIG = RulModelConfig(
    lgbm_seeds=(0, 1),
    lgbm_params={"n_estimators": 40, "num_leaves": 7, "subsample": 0.7, "subsample_freq": 1, "colsample_bytree": 0.6},
    extra_trees=10,
)


def test_same_seed_same_predictions() -> None:
    x, y = _data()
    a = RulEnsemble(CONFIG, seed=3).fit(x, y).predict(x)
    b = RulEnsemble(CONFIG, seed=3).fit(x, y).predict(x)
    np.testing.assert_array_equal(a, b)
    c = RulEnsemble(CONFIG, seed=4).fit(x, y).predict(x)
    assert not np.array_equal(a, c)


def test_predictions_are_clipped_and_follow_the_signal() -> None:
    x, y = _data()
    pred = RulEnsemble(CONFIG).fit(x, y).predict(x)
    assert pred.min() >= 0 and pred.max() <= 125
    assert np.corrcoef(pred, y)[0, 1] > 0.9


def test_predict_uses_training_column_order() -> None:
    x, y = _data()
    model = RulEnsemble(CONFIG).fit(x, y)
    np.testing.assert_array_equal(model.predict(x), model.predict(x[x.columns[::-1]]))
