"""Validation splits that respect machines and time.

Rows of one machine are strongly correlated, so a row-level split lets a model memorize each machine and
look better than it will on a new one: every split here holds out whole machines. When rows carry a
shared clock (a plant, unlike C-MAPSS where each engine has its own cycle count), the splitter can also
forward-chain, so training rows always end before the validation period starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupedTimeSplit:
    """K folds of whole machines; with ``times``, training data also precedes validation data.

    Without times (``split(groups)``): machines are shuffled with ``seed`` and dealt into ``n_splits``
    folds of about equal row counts; each fold validates on its machines and trains on all the others.

    With times (``split(groups, times)``): the time axis is cut into ``n_splits + 1`` blocks of equal row
    counts. Fold ``k`` validates on its machines' rows inside block ``k + 1`` and trains only on the other
    machines' rows strictly before that block starts, so nothing from the validation period or later, and
    nothing from a validation machine, reaches training.
    """

    n_splits: int = 5
    seed: int = 0

    def assign_folds(self, groups: np.ndarray) -> dict[object, int]:
        """Fold number of each machine: largest machines first into the currently smallest fold."""
        unique, counts = np.unique(np.asarray(groups), return_counts=True)
        if len(unique) < self.n_splits:
            raise ValueError(f"{len(unique)} machines cannot fill {self.n_splits} folds")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(unique))
        # Stable sort on counts after the random permutation: ties broken by the seed.
        order = order[np.argsort(-counts[order], kind="stable")]
        sizes = np.zeros(self.n_splits, dtype=np.int64)
        folds: dict[object, int] = {}
        for i in order:
            k = int(np.argmin(sizes))
            folds[unique[i].item() if hasattr(unique[i], "item") else unique[i]] = k
            sizes[k] += counts[i]
        return folds

    def split(self, groups: np.ndarray, times: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        groups = np.asarray(groups)
        folds = self.assign_folds(groups)
        fold_of_row = np.array([folds[g.item() if hasattr(g, "item") else g] for g in groups])
        if times is None:
            for k in range(self.n_splits):
                yield np.flatnonzero(fold_of_row != k), np.flatnonzero(fold_of_row == k)
            return
        times = np.asarray(times)
        edges = np.quantile(times, np.linspace(0.0, 1.0, self.n_splits + 2))
        for k in range(self.n_splits):
            start, end = edges[k + 1], edges[k + 2]
            in_block = (times >= start) & ((times < end) if k < self.n_splits - 1 else (times <= end))
            val = np.flatnonzero((fold_of_row == k) & in_block)
            train = np.flatnonzero((fold_of_row != k) & (times < start))
            yield train, val


def sample_cut_rows(groups: np.ndarray, n_cuts: int, min_history: int, rng: np.random.Generator) -> np.ndarray:
    """Rows at which to score truncated runs, emulating a test set of runs cut before failure.

    For each machine, ``n_cuts`` distinct cut positions are drawn uniformly among the readings after the
    first ``min_history`` and before the last (the failure itself is never the cut). Rows must be sorted by
    machine, then time; because features are causal, scoring the cut row of the full run equals scoring
    the last row of the truncated run.
    """
    groups = np.asarray(groups)
    first = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[first, len(groups)])
    picked: list[np.ndarray] = []
    for start, length in zip(first, lengths, strict=True):
        low = min(min_history, length - 1)
        candidates = np.arange(start + max(low - 1, 0), start + length - 1)
        if len(candidates) == 0:
            candidates = np.array([start + length - 1])
        size = min(n_cuts, len(candidates))
        picked.append(np.sort(rng.choice(candidates, size=size, replace=False)))
    rows = np.concatenate(picked) if picked else np.array([], dtype=np.int64)
    return rows
