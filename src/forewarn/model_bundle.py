"""The contract between training and the scorer: what a registered Forewarn model is and how it scores.

A registered version of ``settings.mlflow.model_name`` is a LightGBM Booster logged with the
``mlflow.lightgbm`` flavour (failure-within-horizon classifier). Its MLmodel ``metadata`` holds:

    forewarn_bundle: 1
    horizon:              e.g. "24h" or "30 cycles" (what P(failure) refers to)
    feature_set_version:  must equal the features service's version, or the scorer refuses it
    calibration:          {"raw": [...], "prob": [...]}: monotone map from the booster's probability to a
                          calibrated one (isotonic, interpolated), or absent
    rul_model_uri:        URI of a LightGBM RUL regressor logged beside it, or absent

Scoring is pure (numpy in, numpy out) so the batch path, the REST path and the benchmark share it.

Plain predictions can come from a native compilation of the booster (lleaves: the trees compiled by LLVM
into one function, ~3-4x faster than ``Booster.predict`` on one thread; see :func:`compile_booster`).
It is only used after it reproduced ``Booster.predict`` on probe rows built from the model's own split
thresholds, missing values included; otherwise the Booster predicts and the reason is logged.
Contributions (``pred_contrib``) always come from the Booster.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
# Stated, not inferred: MLflow's inference runs a subprocess per logged model (~4 s each).
_REQUIREMENTS = ["lightgbm", "numpy", "scikit-learn"]


@dataclass
class ModelBundle:
    booster: Any
    name: str
    version: str
    feature_names: list[str]
    horizon: str | None = None
    feature_set_version: str | None = None
    calibration: tuple[np.ndarray, np.ndarray] | None = None
    rul_booster: Any | None = None
    num_threads: int = 1
    # Native compilations of booster / rul_booster (CompiledForest), set by compile(); None: Booster.predict.
    compiled: Any | None = None
    compiled_rul: Any | None = None
    _sensor_of: dict[str, str | None] = field(default_factory=dict)
    _column_maps: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if self.compiled is not None:
            raw = self.compiled.predict(matrix, num_threads=self.num_threads)
        else:
            raw = self.booster.predict(matrix, num_threads=self.num_threads)
        if self.calibration is None:
            return np.asarray(raw, dtype=np.float64)
        return np.interp(raw, self.calibration[0], self.calibration[1])

    def predict_rul(self, matrix: np.ndarray) -> np.ndarray | None:
        if self.rul_booster is None:
            return None
        if self.compiled_rul is not None:
            raw = self.compiled_rul.predict(matrix, num_threads=self.num_threads)
        else:
            raw = self.rul_booster.predict(matrix, num_threads=self.num_threads)
        return np.maximum(raw, 0.0)

    def compile(self, cache_dir: Path | None = None) -> None:
        """Compile the booster (and the RUL booster) to native code; on any failure keep Booster.predict.

        Never raises: a model that cannot be compiled still serves, more slowly, and the reason is logged."""
        self.compiled = _compile_or_log(self.booster, cache_dir, f"{self.name} version {self.version}")
        if self.rul_booster is not None:
            self.compiled_rul = _compile_or_log(self.rul_booster, cache_dir,
                                                f"{self.name} version {self.version} (RUL)")

    def top_contributors(self, matrix: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """The k features that pushed each row's risk up most (LightGBM pred_contrib, TreeSHAP).

        Costly (tens of times a plain predict), so callers ask only for rows worth explaining."""
        if len(matrix) == 0:
            return []
        contrib = self.booster.predict(matrix, pred_contrib=True, num_threads=self.num_threads)[:, :-1]
        order = np.argsort(-contrib, axis=1)[:, :k]
        result = []
        for row, picks in enumerate(order):
            result.append(
                [
                    {
                        "feature": self.feature_names[j],
                        "sensor": self.sensor_of(self.feature_names[j]),
                        "value": None if np.isnan(matrix[row, j]) else float(matrix[row, j]),
                        "contribution": float(contrib[row, j]),
                    }
                    for j in picks
                    if contrib[row, j] > 0
                ]
            )
        return result

    def sensor_of(self, feature: str) -> str | None:
        """Feature names are ``{sensor}__{window}__{stat}``; machine-level ones have no sensor."""
        if feature not in self._sensor_of:
            self._sensor_of[feature] = feature.split("__", 1)[0] if "__" in feature else None
        return self._sensor_of[feature]

    def align(self, names: list[str], matrix: np.ndarray) -> np.ndarray:
        """A matrix whose columns are ``names`` -> the model's column order; absent features are NaN.

        The column map is computed once per distinct name list, so aligning a block is one gather."""
        key = tuple(names)
        if names == self.feature_names:
            return matrix
        columns = self._column_maps.get(key)
        if columns is None:
            position = {name: i for i, name in enumerate(names)}
            columns = np.array([position.get(name, -1) for name in self.feature_names], dtype=np.int64)
            self._column_maps[key] = columns
        out = matrix[:, np.maximum(columns, 0)] if matrix.shape[1] else np.empty((len(matrix), len(columns)))
        out[:, columns < 0] = np.nan
        return out


# --- native compilation -------------------------------------------------------------------------------

# lleaves' defaults except the code model: "small" is a little faster but may crash on very large forests.
_COMPILE_OPTIONS = {"fcodemodel": "large", "fblocksize": 34, "use_fp64": True}
MAX_DEVIATION = 1e-9  # largest |compiled - Booster.predict| accepted on the probe rows
# LightGBM's kZeroThreshold (1e-35f): Booster.predict reads any |x| <= it as 0.0 before walking the trees
# (c_api's dense-row reader drops such values); lleaves compares the raw value, so tiny ones are zeroed here.
ZERO_THRESHOLD = float(np.float32(1e-35))


class CompileError(RuntimeError):
    """The booster could not be compiled, or its compilation does not reproduce Booster.predict."""


class CompiledForest:
    """A LightGBM model compiled by lleaves: ``predict(matrix)`` equals ``Booster.predict(matrix)``."""

    def __init__(self, model: Any, num_features: int, key: str, cached: bool) -> None:
        self._model = model
        self.num_features = num_features
        self.key = key  # cache key: model text, compiler versions, target CPU, options
        self.cached = cached  # loaded from the object-file cache rather than compiled now

    def predict(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self.num_features:
            raise ValueError(f"matrix {matrix.shape} does not have {self.num_features} columns")
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        magnitude = np.abs(matrix)
        tiny = (magnitude <= ZERO_THRESHOLD) & (magnitude > 0)  # NaN compares False: stays missing
        if tiny.any():  # rare: a copy only then
            matrix = np.where(tiny, 0.0, matrix)
        return self._model.predict(matrix, n_jobs=num_threads)


def default_compile_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "forewarn" / "compiled-models"


def compile_booster(booster: Any, cache_dir: Path | None = None) -> CompiledForest:
    """Compile a LightGBM booster with lleaves, once per model: the object file is cached in ``cache_dir``
    under a key of the model text, the compiler versions and the target CPU, so a restart or a second
    replica loads it in milliseconds instead of compiling again (seconds per hundred trees).

    The result is checked against ``booster.predict`` on probe rows (:func:`probe_rows`); raises
    :class:`CompileError` when lleaves is missing, fails, or deviates by more than ``MAX_DEVIATION``."""
    try:
        from importlib.metadata import version as installed_version

        import llvmlite
        import llvmlite.binding as llvm
        from lleaves import Model

        lleaves_version = installed_version("lleaves")
    except ImportError as exc:
        raise CompileError(f"lleaves is not importable: {exc}") from exc
    text = booster.model_to_string()
    try:
        llvm.initialize()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        try:
            features = llvm.get_host_cpu_features().flatten()
        except RuntimeError:
            features = ""
        target = f"{llvm.get_process_triple()} {llvm.get_host_cpu_name()} {features}"
    except Exception as exc:  # noqa: BLE001 - any LLVM failure means: no compilation
        raise CompileError(f"LLVM is not usable here: {exc}") from exc
    digest = hashlib.sha256()
    for part in (text, lleaves_version, llvmlite.__version__, target, repr(sorted(_COMPILE_OPTIONS.items()))):
        digest.update(part.encode())
        digest.update(b"\0")
    key = digest.hexdigest()[:32]

    cache_path: Path | None = None
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            cache_path = cache_dir / f"{key}.o"
        except OSError as exc:
            log.warning("compiled-model cache %s is not usable (%s); compiling without it", cache_dir, exc)
    cached = cache_path is not None and cache_path.exists()
    # lleaves writes the object file as LLVM emits it: write it under a private name and rename it once
    # verified, so a concurrent reader (another replica) never loads half a file or a wrong one.
    scratch = None if cache_path is None or cached else cache_path.with_name(
        f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    object_file = cache_path if cached else scratch
    with tempfile.TemporaryDirectory(prefix="forewarn-compile-") as work:
        model_file = Path(work) / "model.txt"
        model_file.write_text(text)
        try:
            model = Model(model_file=str(model_file))
            model.compile(cache=str(object_file) if object_file else None, **_COMPILE_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - unsupported model, compiler bug: fall back
            if scratch is not None:
                scratch.unlink(missing_ok=True)
            raise CompileError(f"lleaves could not compile the model: {type(exc).__name__}: {exc}") from exc
    forest = CompiledForest(model, booster.num_feature(), key, cached)
    rows = probe_rows(booster, text)
    try:
        deviation = float(np.max(np.abs(forest.predict(rows) - np.asarray(booster.predict(rows, num_threads=1)))))
        failure = f"max deviation {deviation:.3g} on {len(rows)} probe rows"
    except Exception as exc:  # noqa: BLE001 - e.g. a multiclass output shape
        deviation, failure = float("inf"), f"{type(exc).__name__}: {exc}"
    if not deviation <= MAX_DEVIATION:
        if object_file is not None:
            object_file.unlink(missing_ok=True)  # a bad cached object is not loaded again
        raise CompileError(f"compiled model does not reproduce Booster.predict ({failure})")
    if scratch is not None and cache_path is not None and scratch.exists():
        os.replace(scratch, cache_path)
    return forest


def probe_rows(booster: Any, text: str | None = None, rows: int = 512, seed: int = 0) -> np.ndarray:
    """Rows that walk both sides of the model's splits: per feature, values at a split threshold, just
    above and below it, NaN (missing), 0, small integers (categorical codes, negative ones included) and
    normal noise."""
    rng = np.random.default_rng(seed)
    width = booster.num_feature()
    thresholds: list[list[float]] = [[] for _ in range(width)]
    categorical = np.zeros(width, dtype=bool)
    split_features: list[int] = []
    decision_types: list[int] = []
    for line in (text or booster.model_to_string()).splitlines():
        if line.startswith("split_feature="):
            split_features = [int(v) for v in line.split("=", 1)[1].split()]
        elif line.startswith("decision_type="):
            decision_types = [int(v) for v in line.split("=", 1)[1].split()]
            for feature, decision in zip(split_features, decision_types, strict=False):
                categorical[feature] |= bool(decision & 1)
        elif line.startswith("threshold="):
            for feature, value in zip(split_features, line.split("=", 1)[1].split(), strict=False):
                thresholds[feature].append(float(value))
    out = rng.normal(scale=3.0, size=(rows, width))
    for j in range(width):
        kind = rng.integers(0, 6, size=rows)
        if categorical[j]:
            out[:, j] = rng.integers(-2, 40, size=rows).astype(np.float64)
        elif thresholds[j]:
            at = np.asarray(thresholds[j])[rng.integers(0, len(thresholds[j]), size=rows)]
            out[:, j] = np.where(kind == 0, at, out[:, j])
            out[:, j] = np.where(kind == 1, np.nextafter(at, np.inf), out[:, j])
            out[:, j] = np.where(kind == 2, np.nextafter(at, -np.inf), out[:, j])
        out[kind == 3, j] = np.nan
        out[(kind == 4) & (rng.random(rows) < 0.5), j] = 0.0
    out[: rows // 16] = np.nan  # whole rows missing
    return out


def _compile_or_log(booster: Any, cache_dir: Path | None, what: str) -> CompiledForest | None:
    import time

    started = time.perf_counter()
    try:
        forest = compile_booster(booster, cache_dir)
    except CompileError as exc:
        log.warning("serving %s with Booster.predict, not compiled: %s", what, exc)
        return None
    log.info("compiled %s (%s in %.1f s)", what, "from cache" if forest.cached else "lleaves",
             time.perf_counter() - started)
    return forest


def bundle_metadata(
    *,
    horizon: str | None,
    feature_set_version: str | None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    rul_model_uri: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"forewarn_bundle": BUNDLE_FORMAT, "horizon": horizon,
                            "feature_set_version": feature_set_version}
    if calibration is not None:
        meta["calibration"] = {"raw": [float(x) for x in calibration[0]],
                               "prob": [float(y) for y in calibration[1]]}
    if rul_model_uri:
        meta["rul_model_uri"] = rul_model_uri
    return meta


class NoChampion(LookupError):
    """No model version carries the alias yet."""


def champion_version(tracking_uri: str, name: str, alias: str) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise NoChampion(
            f"no model version of {name!r} has the alias {alias!r}; train and promote one "
            f"('forewarn train' then 'forewarn promote')"
        ) from exc


def load_bundle(tracking_uri: str, name: str, version: str, num_threads: int = 1, *, compile_model: bool = False,
                compile_cache_dir: Path | None = None) -> ModelBundle:
    """Load a registered version; with ``compile_model``, compile it (falls back to the Booster, logged)."""
    import mlflow
    from mlflow.models import get_model_info

    mlflow.set_tracking_uri(tracking_uri)
    uri = f"models:/{name}/{version}"
    meta = get_model_info(uri).metadata or {}
    booster = mlflow.lightgbm.load_model(uri)
    calibration = None
    if meta.get("calibration"):
        calibration = (np.asarray(meta["calibration"]["raw"]), np.asarray(meta["calibration"]["prob"]))
    rul_booster = mlflow.lightgbm.load_model(meta["rul_model_uri"]) if meta.get("rul_model_uri") else None
    bundle = ModelBundle(
        booster=booster,
        name=name,
        version=version,
        feature_names=list(booster.feature_name()),
        horizon=meta.get("horizon"),
        feature_set_version=meta.get("feature_set_version"),
        calibration=calibration,
        rul_booster=rul_booster,
        num_threads=num_threads,
    )
    if compile_model:
        bundle.compile(compile_cache_dir)
    return bundle


def log_bundle(
    booster: Any,
    *,
    registered_name: str,
    horizon: str | None,
    feature_set_version: str | None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    rul_booster: Any | None = None,
) -> str:
    """Log (inside the active MLflow run) and register a bundle; returns the registered version."""
    import mlflow

    rul_uri = None
    if rul_booster is not None:
        rul_uri = mlflow.lightgbm.log_model(rul_booster, name="rul_model", pip_requirements=_REQUIREMENTS).model_uri
    info = mlflow.lightgbm.log_model(
        booster,
        name="model",
        pip_requirements=_REQUIREMENTS,
        registered_model_name=registered_name,
        metadata=bundle_metadata(horizon=horizon, feature_set_version=feature_set_version,
                                 calibration=calibration, rul_model_uri=rul_uri),
    )
    return str(info.registered_model_version)
