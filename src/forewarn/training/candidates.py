"""The failure classifier's candidates: what each model is, the space Optuna searches, fit and predict.

Every candidate sees the same rows (the union of the machine types' feature columns, NaN where a type
lacks a sensor) and returns the raw probability of a failure within the horizon; calibration is applied
afterwards to all of them alike. Each fit is deterministic for a seed: LightGBM with ``deterministic``
and a fixed thread count, forests predicting on one thread (threaded prediction sums trees in completion
order), the LSTM with torch's deterministic algorithms.

Only LightGBM is *servable*: the scorer loads LightGBM boosters (see :mod:`forewarn.model_bundle`). The
forest and the LSTM take part in the comparison so the model card can say what was given up, if anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

LIGHTGBM = "lightgbm"
RANDOM_FOREST = "random_forest"
LSTM = "lstm"


@dataclass(frozen=True)
class FitData:
    """Rows for one fit or one prediction, sorted by machine then time."""

    x: np.ndarray  # (n, f) float64, NaN = missing
    y: np.ndarray  # (n,) 0/1
    groups: np.ndarray  # (n,) machine ids
    times: np.ndarray  # (n,) epoch ms

    def take(self, rows: np.ndarray) -> FitData:
        return FitData(self.x[rows], self.y[rows], self.groups[rows], self.times[rows])

    def __len__(self) -> int:
        return len(self.y)


class Trial(Protocol):
    """The part of ``optuna.Trial`` a search space uses."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


class Candidate(Protocol):
    name: str
    servable: bool

    def suggest(self, trial: Trial, quick: bool) -> dict[str, Any]: ...

    def fit(self, data: FitData, params: dict[str, Any], seed: int) -> Any: ...

    def predict(self, model: Any, data: FitData) -> np.ndarray: ...

    def importance(self, model: Any) -> np.ndarray: ...

    def log_model(self, model: Any) -> None: ...


def _constant(data: FitData) -> float | None:
    """The only class of a training set that has one class (a fold without failures), else None."""
    values = np.unique(data.y)
    return float(values[0]) if len(values) == 1 else None


class LightGBMCandidate:
    name = LIGHTGBM
    servable = True

    def __init__(self, feature_names: list[str], num_threads: int) -> None:
        self.feature_names = feature_names
        self.num_threads = num_threads

    def suggest(self, trial: Trial, quick: bool) -> dict[str, Any]:
        return {
            "num_boost_round": trial.suggest_int("num_boost_round", 30 if quick else 50, 100 if quick else 600,
                                                 step=10),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 31 if quick else 127, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        }

    def booster_params(self, params: dict[str, Any], seed: int, objective: str = "binary") -> dict[str, Any]:
        return {
            "objective": objective,
            "verbosity": -1,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "seed": seed,
            "bagging_freq": 1,
            **{k: v for k, v in params.items() if k != "num_boost_round"},
        }

    def fit(self, data: FitData, params: dict[str, Any], seed: int, objective: str = "binary") -> Any:
        import lightgbm as lgb

        dataset = lgb.Dataset(data.x, label=data.y, feature_name=self.feature_names, free_raw_data=True)
        return lgb.train(self.booster_params(params, seed, objective), dataset,
                         num_boost_round=int(params["num_boost_round"]))

    def predict(self, model: Any, data: FitData) -> np.ndarray:
        return np.asarray(model.predict(data.x, num_threads=self.num_threads), dtype=np.float64)

    def importance(self, model: Any) -> np.ndarray:
        return np.asarray(model.feature_importance(importance_type="gain"), dtype=np.float64)

    def log_model(self, model: Any) -> None:
        import lightgbm
        import mlflow

        # Explicit requirements: inferring them starts a subprocess that costs seconds per model.
        mlflow.lightgbm.log_model(model, name="model", pip_requirements=[f"lightgbm=={lightgbm.__version__}"])


class RandomForestCandidate:
    name = RANDOM_FOREST
    servable = False

    def __init__(self, feature_names: list[str], num_threads: int) -> None:
        self.feature_names = feature_names
        self.num_threads = num_threads

    def suggest(self, trial: Trial, quick: bool) -> dict[str, Any]:
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 150 if quick else 400, step=25),
            "max_depth": trial.suggest_int("max_depth", 4, 24, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 50, log=True),
            "max_features": trial.suggest_float("max_features", 0.05, 0.5, log=True),
        }

    def fit(self, data: FitData, params: dict[str, Any], seed: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        # sklearn forests split on NaN natively (>= 1.4): absent sensors stay missing, as in LightGBM.
        model = RandomForestClassifier(**params, n_jobs=self.num_threads, random_state=seed)
        model.fit(data.x, data.y)
        model.set_params(n_jobs=1)
        return model

    def predict(self, model: Any, data: FitData) -> np.ndarray:
        proba = model.predict_proba(data.x)
        if proba.shape[1] == 1:
            return np.full(len(data), float(model.classes_[0]))
        return np.asarray(proba[:, 1], dtype=np.float64)

    def importance(self, model: Any) -> np.ndarray:
        return np.asarray(model.feature_importances_, dtype=np.float64)

    def log_model(self, model: Any) -> None:
        import mlflow
        import sklearn

        # skops refuses tree internals unless named; this forest was made right here, so they are trusted.
        mlflow.sklearn.log_model(model, name="model", pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                                 skops_trusted_types=["sklearn.tree._tree.Tree"])


class LstmCandidate:
    """A one-layer LSTM over each row's last ``seq_len`` feature vectors of the same machine.

    Features are standardized with the training rows' mean and spread, and missing values become 0 (the
    mean). Sequences are gathered per batch from an index matrix, so memory stays that of the rows."""

    name = LSTM
    servable = False

    def __init__(self, feature_names: list[str], num_threads: int, seq_len: int = 16) -> None:
        self.feature_names = feature_names
        self.num_threads = num_threads
        self.seq_len = seq_len

    def suggest(self, trial: Trial, quick: bool) -> dict[str, Any]:
        return {
            "hidden": trial.suggest_int("hidden", 16, 64, log=True),
            "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
            "epochs": trial.suggest_int("epochs", 2, 4 if quick else 12),
        }

    def _windows(self, data: FitData) -> np.ndarray:
        """(n, seq_len) row indices of each row's history, oldest first; -1 pads short histories."""
        n = len(data)
        start = np.r_[True, data.groups[1:] != data.groups[:-1]] if n else np.zeros(0, dtype=bool)
        first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
        offsets = np.arange(-self.seq_len + 1, 1)
        index = np.arange(n)[:, None] + offsets[None, :]
        return np.where(index >= first[:, None], index, -1)

    def _inputs(self, model: dict[str, Any], data: FitData) -> Any:
        import torch

        x = (data.x - model["mean"]) / model["scale"]
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        padded = np.vstack([x, np.zeros((1, x.shape[1]))]).astype(np.float32)  # row -1: padding
        return torch.from_numpy(padded), torch.from_numpy(self._windows(data))

    def fit(self, data: FitData, params: dict[str, Any], seed: int) -> Any:
        import torch

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(self.num_threads)
        mean = np.nanmean(np.where(np.isfinite(data.x), data.x, np.nan), axis=0)
        scale = np.nanstd(np.where(np.isfinite(data.x), data.x, np.nan), axis=0)
        mean, scale = np.nan_to_num(mean), np.where(np.nan_to_num(scale) > 0, np.nan_to_num(scale), 1.0)
        model: dict[str, Any] = {"mean": mean, "scale": scale}
        net = _lstm_net(len(self.feature_names), int(params["hidden"]))
        model["net"] = net
        rows, windows = self._inputs(model, data)
        target = torch.from_numpy(np.asarray(data.y, dtype=np.float32))
        positives = float(target.sum())
        weight = torch.tensor((len(target) - positives) / max(positives, 1.0))
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
        optimizer = torch.optim.Adam(net.parameters(), lr=float(params["lr"]))
        generator = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(int(params["epochs"])):
            for batch in torch.randperm(len(target), generator=generator).split(256):
                optimizer.zero_grad()
                loss = loss_fn(net(rows[windows[batch]]), target[batch])
                loss.backward()
                optimizer.step()
        net.eval()
        return model

    def predict(self, model: Any, data: FitData) -> np.ndarray:
        import torch

        rows, windows = self._inputs(model, data)
        with torch.no_grad():
            logits = [model["net"](rows[windows[batch]]) for batch in torch.arange(len(data)).split(4096)]
        out = torch.sigmoid(torch.cat(logits)).numpy() if logits else np.zeros(0)
        return np.asarray(out, dtype=np.float64)

    def importance(self, model: Any) -> np.ndarray:
        # No cheap, faithful importance for a recurrent net; the card uses the tree models' instead.
        return np.full(len(self.feature_names), np.nan)

    def log_model(self, model: Any) -> None:
        import mlflow
        import torch

        mlflow.pytorch.log_model(model["net"], name="model", pip_requirements=[f"torch=={torch.__version__}"])


def _lstm_net(n_features: int, hidden: int) -> Any:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(n_features, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :]).squeeze(-1)

    return Net()


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def build_candidates(feature_names: list[str], num_threads: int, names: list[str],
                     notes: list[str]) -> list[Candidate]:
    """The requested candidates, LightGBM first; the LSTM only when torch imports (else a note)."""
    made: list[Candidate] = [LightGBMCandidate(feature_names, num_threads)]
    if RANDOM_FOREST in names:
        made.append(RandomForestCandidate(feature_names, num_threads))
    if LSTM in names:
        if torch_available():
            made.append(LstmCandidate(feature_names, num_threads))
        else:
            notes.append("LSTM skipped: torch is not installed (pip install 'forewarn[lstm]' to compare it)")
            log.info("LSTM candidate skipped: torch is not installed")
    return made
