"""The isotonic calibration map: monotone, and applied by ModelBundle exactly as training computed it."""

from __future__ import annotations

import numpy as np

from forewarn.model_bundle import ModelBundle, bundle_metadata
from forewarn.training.tuning import apply_calibration, expected_calibration_error, fit_calibration


class RawBooster:
    """Stands in for a LightGBM booster: the 'raw probability' is the first column."""

    def predict(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        return matrix[:, 0]


def _overconfident(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.random(n)
    y = (rng.random(n) < raw**2).astype(int)  # the true rate is raw**2: raw overstates the risk
    return raw, y


def test_map_is_monotone_and_within_unit_interval() -> None:
    raw, y = _overconfident()
    calibration = fit_calibration(raw, y)
    assert calibration is not None
    x, p = calibration
    assert np.all(np.diff(x) > 0), "np.interp needs strictly increasing raw values"
    assert np.all(np.diff(p) >= 0)
    assert p.min() >= 0.0 and p.max() <= 1.0


def test_bundle_applies_the_map_as_training_did() -> None:
    from sklearn.isotonic import IsotonicRegression

    raw, y = _overconfident()
    calibration = fit_calibration(raw, y)
    # Through the registry the map travels as JSON lists in the MLmodel metadata.
    meta = bundle_metadata(horizon="2h", feature_set_version="1", calibration=calibration)
    loaded = (np.asarray(meta["calibration"]["raw"]), np.asarray(meta["calibration"]["prob"]))
    bundle = ModelBundle(booster=RawBooster(), name="m", version="1", feature_names=["raw"], calibration=loaded)
    probe = np.r_[-0.5, np.linspace(0, 1, 101), 1.5]  # also outside the fitted range: clipped
    served = bundle.predict(probe[:, None])
    np.testing.assert_array_equal(served, apply_calibration(calibration, probe))
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, y)
    np.testing.assert_allclose(served, iso.predict(probe), rtol=0, atol=1e-12)


def test_calibration_reduces_calibration_error() -> None:
    raw, y = _overconfident(seed=1)
    calibration = fit_calibration(raw, y)
    fresh_raw, fresh_y = _overconfident(seed=2)
    before = expected_calibration_error(fresh_y, fresh_raw)
    after = expected_calibration_error(fresh_y, apply_calibration(calibration, fresh_raw))
    assert after < before / 2


def test_no_map_from_a_single_class() -> None:
    assert fit_calibration(np.linspace(0, 1, 10), np.zeros(10)) is None
    np.testing.assert_array_equal(apply_calibration(None, np.array([0.2, 0.7])), [0.2, 0.7])


def test_expected_calibration_error_hand_case() -> None:
    # Bin [0.1, 0.2): predicted 0.1, observed 0.5 (gap 0.4, 2 rows); bin [0.9, 1]: predicted 0.9, observed 1 (2 rows).
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    assert abs(expected_calibration_error(y, p) - (0.4 * 2 + 0.1 * 2) / 4) < 1e-12
