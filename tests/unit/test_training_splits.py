"""The grouped splitter never puts one machine on both sides and, with a clock, never trains on the future."""

from __future__ import annotations

import numpy as np
import pytest

from forewarn.training.splits import GroupedTimeSplit, sample_cut_rows


def _fleet(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 40, size=23)
    groups = np.repeat(np.arange(100, 123), lengths)
    # A shared clock: each machine starts at its own time and reports every tick.
    starts = rng.integers(0, 50, size=23)
    times = np.concatenate([s + np.arange(n) for s, n in zip(starts, lengths, strict=True)])
    return groups, times


def test_grouped_folds_hold_out_whole_machines_and_cover_every_row() -> None:
    groups, _ = _fleet()
    seen = np.zeros(len(groups), dtype=int)
    for train, val in GroupedTimeSplit(n_splits=4, seed=1).split(groups):
        assert set(groups[train]).isdisjoint(groups[val])
        assert len(train) + len(val) == len(groups)
        seen[val] += 1
    assert (seen == 1).all()


def test_time_aware_folds_have_no_shared_machine_and_no_future_rows() -> None:
    groups, times = _fleet(3)
    folds = list(GroupedTimeSplit(n_splits=3, seed=0).split(groups, times))
    assert len(folds) == 3
    for train, val in folds:
        assert len(val) > 0 and len(train) > 0
        assert set(groups[train]).isdisjoint(groups[val])
        assert times[train].max() < times[val].min()


def test_same_seed_same_folds_other_seed_other_folds() -> None:
    groups, _ = _fleet()
    a = GroupedTimeSplit(5, seed=7).assign_folds(groups)
    assert a == GroupedTimeSplit(5, seed=7).assign_folds(groups)
    assert a != GroupedTimeSplit(5, seed=8).assign_folds(groups)


def test_folds_are_balanced_by_rows() -> None:
    groups, _ = _fleet()
    sizes = [len(val) for _, val in GroupedTimeSplit(4).split(groups)]
    assert max(sizes) - min(sizes) <= 40  # at most about one machine apart


def test_too_few_machines_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot fill"):
        GroupedTimeSplit(5).assign_folds(np.array([1, 1, 2, 3]))


def test_cut_rows_stay_inside_their_machine_before_failure() -> None:
    groups, _ = _fleet()
    rows = sample_cut_rows(groups, n_cuts=3, min_history=4, rng=np.random.default_rng(0))
    last_row = {g: np.flatnonzero(groups == g).max() for g in np.unique(groups)}
    first_row = {g: np.flatnonzero(groups == g).min() for g in np.unique(groups)}
    for r in rows:
        g = groups[r]
        assert r < last_row[g], "the failure cycle itself is never a cut"
        assert r - first_row[g] >= min(3, last_row[g] - first_row[g] - 1)
    counts = {g: int(np.sum(groups[rows] == g)) for g in np.unique(groups)}
    assert all(1 <= c <= 3 for c in counts.values())
    again = sample_cut_rows(groups, n_cuts=3, min_history=4, rng=np.random.default_rng(0))
    assert (rows == again).all()
