"""Causal rolling statistics agree with pandas and never look ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forewarn.training.rolling import baseline_mean, ewma, group_starts, position_in_group, rolling_stats


@pytest.fixture
def runs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    groups = np.repeat([3, 7, 9], [12, 1, 20])
    values = rng.normal(size=(len(groups), 2)).cumsum(axis=0)
    return groups, values


def test_group_positions() -> None:
    groups = np.array([1, 1, 2, 2, 2, 5])
    assert group_starts(groups).tolist() == [0, 0, 2, 2, 2, 5]
    assert position_in_group(groups).tolist() == [0, 1, 0, 1, 2, 0]


def test_rolling_stats_match_pandas(runs: tuple[np.ndarray, np.ndarray]) -> None:
    groups, values = runs
    frame = pd.DataFrame(values, columns=["a", "b"]).assign(g=groups)
    mean, std, slope = rolling_stats(values, groups, 5)
    rolled = frame.groupby("g")[["a", "b"]].rolling(5, min_periods=1)
    np.testing.assert_allclose(mean, rolled.mean().to_numpy(), atol=1e-9)
    np.testing.assert_allclose(std, rolled.std(ddof=0).fillna(0).to_numpy(), atol=1e-7)

    def ols_slope(w: pd.Series) -> float:
        return 0.0 if len(w) < 2 else float(np.polyfit(np.arange(len(w)), w.to_numpy(), 1)[0])

    expected = rolled.apply(ols_slope, raw=False).to_numpy()
    np.testing.assert_allclose(slope, expected, atol=1e-7)


def test_single_reading_group_has_zero_std_and_slope(runs: tuple[np.ndarray, np.ndarray]) -> None:
    groups, values = runs
    _, std, slope = rolling_stats(values, groups, 10)
    assert np.all(std[12] == 0) and np.all(slope[12] == 0)


def test_ewma_matches_recursive_pandas(runs: tuple[np.ndarray, np.ndarray]) -> None:
    groups, values = runs
    frame = pd.DataFrame(values, columns=["a", "b"]).assign(g=groups)
    expected = frame.groupby("g")[["a", "b"]].transform(lambda s: s.ewm(span=4, adjust=False).mean())
    np.testing.assert_allclose(ewma(values, groups, 4), expected.to_numpy(), atol=1e-12)


def test_baseline_is_frozen_after_n_first(runs: tuple[np.ndarray, np.ndarray]) -> None:
    groups, values = runs
    base = baseline_mean(values, groups, 3)
    np.testing.assert_allclose(base[0], values[0])
    np.testing.assert_allclose(base[1], values[:2].mean(axis=0))
    np.testing.assert_allclose(base[2:12], np.tile(values[:3].mean(axis=0), (10, 1)))
    np.testing.assert_allclose(base[13], values[13])


@pytest.mark.parametrize("cut", [1, 4, 9, 15])
def test_features_of_a_truncated_run_equal_the_full_run_at_the_cut(
    runs: tuple[np.ndarray, np.ndarray], cut: int
) -> None:
    groups, values = runs
    last = np.flatnonzero(groups == 9)
    keep = np.r_[np.flatnonzero(groups != 9), last[:cut]]
    full = [*rolling_stats(values, groups, 6), ewma(values, groups, 5), baseline_mean(values, groups, 4)]
    part = [
        *rolling_stats(values[keep], groups[keep], 6),
        ewma(values[keep], groups[keep], 5),
        baseline_mean(values[keep], groups[keep], 4),
    ]
    for f, p in zip(full, part, strict=True):
        np.testing.assert_allclose(p[-1], f[last[cut - 1]], atol=1e-9)
