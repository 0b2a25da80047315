"""Cleaning columns: valid ranges from the asset config, short gaps imputed, long gaps flagged, conditions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forewarn.assets import load_asset_config
from forewarn.etl.clean import clean

PUMP = load_asset_config("plant").machine_type("pump")
TURBOFAN = load_asset_config("cmapss").machine_type("turbofan")


def test_out_of_range_is_nulled_short_gaps_imputed_long_gaps_flagged() -> None:
    ts = [0, 1000, 2000, 3000, 20_000, 21_000]
    temperature = [20.0, np.nan, 999.0, np.nan, np.nan, 25.0]  # 999 is above the pump's 200 degC
    frame = pd.DataFrame({"machine_id": "p", "ts": ts, "value__temperature": temperature})
    out = clean(frame, PUMP, short_gap_ms=5000)
    assert out["clean__temperature"].tolist()[:4] == [20.0, 20.0, 20.0, 20.0]
    assert np.isnan(out["clean__temperature"].iloc[4])  # 20 s after the last value: not imputed
    assert out["out_of_range"].tolist() == [0, 0, 1, 0, 0, 0]
    assert out["imputed"].tolist() == [0, 1, 1, 1, 0, 0]
    assert out["long_gap"].tolist() == [False, False, False, False, True, False]
    assert frame["value__temperature"].iloc[2] == 999.0  # the raw column is left as it was


def test_imputation_follows_event_time_per_machine_and_keeps_the_frame_index() -> None:
    frame = pd.DataFrame({"machine_id": ["a", "b", "a", "a"], "ts": [2000, 0, 0, 1000],
                          "value__temperature": [np.nan, 7.0, 1.0, np.nan]}, index=[10, 11, 12, 13])
    out = clean(frame, PUMP, short_gap_ms=5000)
    assert list(out.index) == [10, 11, 12, 13]
    assert out["clean__temperature"].tolist() == [1.0, 7.0, 1.0, 1.0]  # never b's value for a


def test_operating_condition_from_rounded_settings() -> None:
    frame = pd.DataFrame({"machine_id": "e1", "ts": [0, 1, 2],
                          "value__setting1": [42.0049, 10.0012, np.nan], "value__setting2": [0.8405, 0.25, 0.6],
                          "value__setting3": [100.0, 100.0, 60.0]})
    out = clean(frame, TURBOFAN, short_gap_ms=0)
    assert out["condition"].tolist() == ["setting1=42.0|setting2=0.8|setting3=100.0",
                                         "setting1=10.0|setting2=0.2|setting3=100.0", None]
    assert clean(frame.assign(value__temperature=1.0), PUMP, 0)["condition"].isna().all()
