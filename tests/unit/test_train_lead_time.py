"""Alert lead time: for each failure, how long before it the calibrated risk first reached the threshold."""

from __future__ import annotations

import numpy as np

from forewarn.training.tuning import alert_lead_times, failure_times

H = 3_600_000


def _case() -> dict[str, np.ndarray]:
    # Machine a: hourly rows 0..21 h, failures at 10 h and 20 h, horizon 3 h (rows 7-9 and 17-19 positive).
    # Machine b: rows 0..5 h, failure at 5.5 h (rows 3-5 positive), never alarmed.
    a_t = np.arange(22) * H
    b_t = np.arange(6) * H
    groups = np.array(["a"] * 22 + ["b"] * 6)
    times = np.r_[a_t, b_t]
    label = np.zeros(28, dtype=int)
    label[[7, 8, 9, 17, 18, 19]] = 1
    label[[22 + 3, 22 + 4, 22 + 5]] = 1
    ttf = np.full(28, np.nan)
    for row, failure in ((7, 10), (8, 10), (9, 10), (17, 20), (18, 20), (19, 20)):
        ttf[row] = failure * H - times[row]
    for row in (25, 26, 27):
        ttf[row] = 5.5 * H - times[row]
    risk = np.zeros(28)
    risk[[8, 9]] = 0.9  # first crossing 2 h before the 10 h failure
    risk[15] = 0.95  # an alarm before the horizon of the 20 h failure does not count for it
    risk[18] = 0.8  # ... the crossing inside it does: 2 h before
    return {"groups": groups, "times": times, "label": label, "ttf": ttf, "risk": risk}


def test_lead_time_per_failure() -> None:
    c = _case()
    failure_ts = failure_times(c["groups"], c["times"], c["label"], c["ttf"])
    leads = alert_lead_times(c["groups"], c["times"], c["label"], failure_ts, c["risk"], threshold=0.7)
    assert leads.failures == [("a", 10 * H), ("a", 20 * H), ("b", int(5.5 * H))]
    assert leads.lead_ms == [2 * H, 2 * H, None]
    summary = leads.summary()
    assert summary["failures"] == 3 and summary["failures_detected"] == 2
    assert abs(summary["detection_rate"] - 2 / 3) < 1e-12
    assert summary["lead_time_median_h"] == 2.0 and summary["lead_time_mean_h"] == 2.0


def test_threshold_matters() -> None:
    c = _case()
    failure_ts = failure_times(c["groups"], c["times"], c["label"], c["ttf"])
    leads = alert_lead_times(c["groups"], c["times"], c["label"], failure_ts, c["risk"], threshold=0.85)
    assert leads.lead_ms == [2 * H, None, None]


def test_failure_times_without_time_to_failure() -> None:
    c = _case()
    approx = failure_times(c["groups"], c["times"], c["label"], None)
    # Each run of positive rows is one failure, placed at its last row (9 h, 19 h, 5 h).
    assert approx[7] == approx[9] == 9 * H
    assert approx[17] == 19 * H
    assert approx[25] == 5 * H
    assert np.isnan(approx[0])
    leads = alert_lead_times(c["groups"], c["times"], c["label"], approx, c["risk"], threshold=0.7)
    assert leads.lead_ms == [1 * H, 1 * H, None]
