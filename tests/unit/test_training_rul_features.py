"""Condition normalization, automatic sensor dropping and causal RUL features on synthetic fleets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forewarn.training.conditions import ConditionScaler, OperatingConditions
from forewarn.training.rul_features import DegradationFeaturizer, FeatureSpec, piecewise_rul

# Six nominal (altitude kft, Mach, throttle) conditions, as in C-MAPSS FD002/FD004.
SIX = np.array([[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100], [42, 0.84, 100]])


def synthetic_fleet(n_units: int = 6, conditions: np.ndarray = SIX, seed: int = 0) -> pd.DataFrame:
    """Engines that degrade linearly; sensors offset by the condition, one constant, one quantized."""
    rng = np.random.default_rng(seed)
    frames = []
    for unit in range(1, n_units + 1):
        life = int(rng.integers(60, 120))
        cycle = np.arange(1, life + 1)
        cond = rng.integers(0, len(conditions), size=life)
        settings = conditions[cond] + rng.normal(0, [0.002, 0.0003, 0], size=(life, 3))
        wear = np.maximum(0, cycle - life + 50) / 50.0
        frames.append(
            pd.DataFrame(
                {
                    "unit": unit,
                    "cycle": cycle,
                    "setting1": settings[:, 0],
                    "setting2": settings[:, 1],
                    "setting3": settings[:, 2],
                    "s1": 500.0 + 10 * cond,  # constant within each condition
                    "s2": 640 + 5 * cond + 2.0 * wear + rng.normal(0, 0.3, life),
                    "s3": 1500 - 20 * cond - 4.0 * wear + rng.normal(0, 0.5, life),
                    "s4": np.where(rng.random(life) < 0.99, 21.61, 21.60),  # quasi-constant
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


SENSORS = ("s1", "s2", "s3", "s4")


def test_six_operating_conditions_are_recovered() -> None:
    fleet = synthetic_fleet()
    conditions = OperatingConditions().fit(fleet)
    assert conditions.n_conditions == 6
    labels = conditions.assign(fleet)
    # Every nominal condition maps to exactly one learned label.
    nominal = fleet["setting1"].round().astype(int)
    assert fleet.assign(label=labels).groupby(nominal)["label"].nunique().eq(1).all()


def test_single_condition_fleet_has_one_condition() -> None:
    fleet = synthetic_fleet(conditions=SIX[:1])
    assert OperatingConditions().fit(fleet).n_conditions == 1


def test_constant_and_quasi_constant_sensors_are_dropped_from_training_variance() -> None:
    fleet = synthetic_fleet()
    conditions = OperatingConditions().fit(fleet)
    labels = conditions.assign(fleet)
    scaler = ConditionScaler(SENSORS).fit(fleet, labels, conditions.n_conditions)
    assert scaler.kept_ == ["s2", "s3"]
    assert scaler.dropped_ == ["s1", "s4"]
    scaled = scaler.transform(fleet, labels)
    # Per-condition z-scores: the condition offsets are gone.
    by_cond = scaled.groupby(labels).mean()
    assert by_cond.abs().max().max() < 0.5


def test_piecewise_rul_is_capped_and_zero_at_failure() -> None:
    fleet = synthetic_fleet(2)
    rul = piecewise_rul(fleet, cap=30)
    last = fleet.groupby("unit").tail(1).index
    assert (rul[last] == 0).all()
    assert rul.max() == 30
    assert piecewise_rul(fleet, cap=None).max() > 30


@pytest.fixture(scope="module")
def fitted() -> tuple[DegradationFeaturizer, pd.DataFrame]:
    fleet = synthetic_fleet(8)
    spec = FeatureSpec(
        mean_windows=(3, 6),
        std_windows=(6,),
        slope_windows=(6,),
        ewm_spans=(4.0,),
        baseline_cycles=5,
        hi_mean_windows=(3,),
        hi_slope_windows=(6,),
        rul_cap=40,
    )
    return DegradationFeaturizer(SENSORS, spec).fit(fleet, piecewise_rul(fleet, 40)), fleet


def test_featurizer_columns(fitted: tuple[DegradationFeaturizer, pd.DataFrame]) -> None:
    featurizer, fleet = fitted
    features = featurizer.transform(fleet)
    assert len(features) == len(fleet)
    assert {
        "cycle",
        "condition",
        "s2_raw",
        "s2_mean6",
        "s3_std6",
        "s2_slope6",
        "s2_ewm4",
        "s3_drift",
        "hi_raw",
        "hi_slope6",
    } <= set(features.columns)
    assert not any(c.startswith(("s1_", "s4_")) for c in features.columns)
    assert np.isfinite(features.to_numpy()).all()


def test_features_at_a_cut_equal_the_truncated_run(fitted: tuple[DegradationFeaturizer, pd.DataFrame]) -> None:
    featurizer, fleet = fitted
    full = featurizer.transform(fleet)
    unit3 = fleet.index[fleet["unit"] == 3]
    cut = unit3[25]
    truncated = fleet[(fleet["unit"] != 3) | (fleet.index <= cut)].reset_index(drop=True)
    part = featurizer.transform(truncated)
    row = int(np.flatnonzero((truncated["unit"] == 3).to_numpy())[-1])
    pd.testing.assert_series_equal(part.iloc[row], full.loc[cut], check_names=False, atol=1e-9)


def test_health_index_falls_toward_failure(fitted: tuple[DegradationFeaturizer, pd.DataFrame]) -> None:
    featurizer, fleet = fitted
    features = featurizer.transform(fleet)
    late = features.loc[fleet.groupby("unit").tail(3).index, "hi_mean3"].mean()
    early = features.loc[fleet.groupby("unit").head(20).index, "hi_mean3"].mean()
    assert late < early


def test_one_condition_fleet_has_no_condition_feature() -> None:
    fleet = synthetic_fleet(4, conditions=SIX[:1])
    featurizer = DegradationFeaturizer(SENSORS).fit(fleet, piecewise_rul(fleet, 125))
    assert "condition" not in featurizer.transform(fleet).columns


def test_life_index_adds_its_own_features() -> None:
    fleet = synthetic_fleet(4)
    spec = FeatureSpec(life_index=True, hi_mean_windows=(5,), hi_slope_windows=(10,))
    features = DegradationFeaturizer(SENSORS, spec).fit(fleet, piecewise_rul(fleet, 125)).transform(fleet)
    assert {"hi_mean5", "li_mean5", "li_slope10", "li_drift"} <= set(features.columns)
