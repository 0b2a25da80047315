"""Training pieces without I/O: served feature columns, the stored holdout definition, seeded tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forewarn.assets import load_asset_config
from forewarn.features import feature_names
from forewarn.training.candidates import FitData, LightGBMCandidate, LstmCandidate
from forewarn.training.pipeline import TrainingSet, holdout_rows, holdout_split, inner_folds, served_feature_names
from forewarn.training.tuning import tune


def test_features_are_the_union_of_the_service_names() -> None:
    config = load_asset_config("plant")
    names = served_feature_names(config, ["pump", "cnc_spindle"])
    pump, cnc = feature_names(config.machine_types["pump"]), feature_names(config.machine_types["cnc_spindle"])
    assert set(names) == set(pump) | set(cnc) and len(names) == len(set(names))
    assert names[: len(pump)] == pump, "config order, first type's columns first"
    assert "torque__1m__mean" in names and "pressure__1m__mean" in names


def _training_set(machines: int = 12, rows: int = 300, seed: int = 0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    frames = []
    for m in range(machines):
        signal = rng.normal(size=rows)
        y = (signal + rng.normal(scale=0.5, size=rows) > 0.8).astype(int)
        frames.append(pd.DataFrame({"machine_id": f"m{m}", "machine_type": "pump" if m % 2 else "fan",
                                    "ts": np.arange(rows) * 1000, "label": y, "f0": signal,
                                    "f1": rng.normal(size=rows)}))
    frame = pd.concat(frames, ignore_index=True)
    return TrainingSet(frame=frame, feature_names=["f0", "f1"], machine_types=["fan", "pump"], label="label",
                       data_hash="h", rows_hash="r", horizon="1h", source=Path("."), manifest={})


def test_holdout_definition_rebuilds_the_same_rows() -> None:
    ts = _training_set()
    dev, hold, definition = holdout_split(ts, n_splits=4, seed=3)
    assert definition["splitter"]["n_splits"] == 4
    np.testing.assert_array_equal(holdout_rows(ts.frame, definition), hold)
    held = set(definition["machine_ids"])
    frame = ts.frame
    assert not held & set(frame.loc[dev, "machine_id"]), "no holdout machine in development"
    assert frame.loc[dev, "ts"].max() < frame.loc[hold, "ts"].min(), "development ends before the holdout"
    assert definition["rows"] == len(hold) and definition["positives"] == int(frame.loc[hold, "label"].sum())


def test_tuning_is_deterministic_and_logs_every_trial() -> None:
    ts = _training_set()
    data = ts.fit_data()
    dev_rows, _, _ = holdout_split(ts, n_splits=4, seed=0)
    dev = data.take(dev_rows)
    folds = inner_folds(dev, 3, seed=0)
    logged: list[tuple[str, int, str]] = []

    def sink(name: str, number: int, params: dict, metrics: dict, state: str) -> None:
        logged.append((name, number, state))

    runs = [tune(LightGBMCandidate(["f0", "f1"], 1), dev, folds, trials=4, seed=7, quick=True, sink=sink)
            for _ in range(2)]
    assert runs[0].best_params == runs[1].best_params
    assert runs[0].best_score == runs[1].best_score
    np.testing.assert_array_equal(runs[0].cv.oof, runs[1].cv.oof)
    assert [n for _, n, _ in logged] == [0, 1, 2, 3] * 2
    assert runs[0].trials_complete + runs[0].trials_pruned == 4
    assert runs[0].best_score > 0.5, "f0 carries the signal"


def test_lstm_windows_stay_inside_each_machine() -> None:
    lstm = LstmCandidate(["f0"], 1, seq_len=3)
    data = FitData(np.zeros((5, 1)), np.zeros(5), np.array(["a", "a", "a", "b", "b"]), np.arange(5))
    np.testing.assert_array_equal(lstm._windows(data), [[-1, -1, 0], [-1, 0, 1], [0, 1, 2], [-1, -1, 3], [-1, 3, 4]])


def test_folds_fall_back_to_machine_groups_when_time_blocks_lack_failures() -> None:
    ts = _training_set()
    frame = ts.frame
    frame["label"] = ((frame["ts"] < 30_000) & (frame["f0"] > 0)).astype(int)  # failures only early on
    dev = ts.fit_data()
    notes: list[str] = []
    folds = inner_folds(dev, 3, seed=0, notes=notes)
    assert notes and "not time-ordered" in notes[0]
    for train, val in folds:
        assert not set(dev.groups[train]) & set(dev.groups[val])
        assert dev.y[train].any() and dev.y[val].any()
