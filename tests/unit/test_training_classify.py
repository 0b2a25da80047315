"""The AI4I feature matrix never contains the label or a failure-mode flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forewarn.training.classify import (
    AI4I_SENSOR_COLUMNS,
    ClassifierConfig,
    FailureClassifier,
    LeakageError,
    assert_no_leakage,
    build_ai4i_features,
)
from forewarn.training.datasets import AI4I_LEAKY_COLUMNS, AI4I_TARGET

LEAKY = set(AI4I_LEAKY_COLUMNS) | {AI4I_TARGET}


def ai4i_like(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A frame with the published AI4I columns; failures follow a torque rule, flags copy the label."""
    rng = np.random.default_rng(seed)
    torque = rng.normal(40, 10, n)
    failure = (torque > 55).astype(int)
    frame = pd.DataFrame(
        {
            "UDI": np.arange(1, n + 1),
            "Product ID": [f"L{i}" for i in range(n)],
            "Type": rng.choice(["L", "M", "H"], n),
            "Air temperature [K]": rng.normal(300, 2, n),
            "Process temperature [K]": rng.normal(310, 1.5, n),
            "Rotational speed [rpm]": rng.normal(1500, 150, n),
            "Torque [Nm]": torque,
            "Tool wear [min]": rng.integers(0, 250, n),
            AI4I_TARGET: failure,
        }
    )
    for flag in AI4I_LEAKY_COLUMNS:
        frame[flag] = failure
    return frame


def test_feature_matrix_has_only_sensor_columns() -> None:
    features = build_ai4i_features(ai4i_like())
    assert not LEAKY & set(features.columns)
    assert set(features.columns) == {*AI4I_SENSOR_COLUMNS.values(), "type_code", "power_w", "temp_diff_k", "strain"}
    assert "UDI" not in features.columns and "Product ID" not in features.columns


def test_feature_matrix_does_not_change_when_flags_change() -> None:
    frame = ai4i_like()
    scrambled = frame.copy()
    for flag in [*AI4I_LEAKY_COLUMNS, AI4I_TARGET]:
        scrambled[flag] = 1 - scrambled[flag]
    pd.testing.assert_frame_equal(build_ai4i_features(frame), build_ai4i_features(scrambled))


def test_derived_features_are_physical() -> None:
    frame = ai4i_like(5)
    f = build_ai4i_features(frame)
    expected_power = frame["Torque [Nm]"] * frame["Rotational speed [rpm]"] * 2 * np.pi / 60
    np.testing.assert_allclose(f["power_w"], expected_power)
    np.testing.assert_allclose(f["temp_diff_k"], frame["Process temperature [K]"] - frame["Air temperature [K]"])
    np.testing.assert_allclose(f["strain"], frame["Tool wear [min]"] * frame["Torque [Nm]"])


@pytest.mark.parametrize("column", sorted(LEAKY))
def test_leaky_columns_are_refused(column: str) -> None:
    with pytest.raises(LeakageError, match=column):
        assert_no_leakage(["torque_nm", column])


def test_classifier_refuses_leaky_matrices_and_learns_a_rule() -> None:
    frame = ai4i_like(400)
    x = build_ai4i_features(frame)
    y = frame[AI4I_TARGET].to_numpy()
    config = ClassifierConfig(seeds=(0,), params={"n_estimators": 30, "num_leaves": 4}, inner_folds=3)
    with pytest.raises(LeakageError):
        FailureClassifier(config).fit(x.assign(HDF=frame["HDF"]), y)
    model = FailureClassifier(config).fit(x, y)
    assert 0.0 < model.threshold_ < 1.0
    assert (model.predict(x) == y).mean() > 0.95


def test_unknown_type_is_an_error() -> None:
    frame = ai4i_like(5)
    frame.loc[0, "Type"] = "X"
    with pytest.raises(ValueError, match="Type"):
        build_ai4i_features(frame)
