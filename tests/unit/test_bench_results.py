"""Benchmark result files: whatever a measurement carries ends up as plain JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from forewarn.cli.bench import write_result


def test_numpy_values_are_written_as_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_result(path, "e2e", {"sustained": np.bool_(True), "rate": np.float64(2.5), "lags": np.arange(3)},
                 time.monotonic())
    document = json.loads(path.read_text())
    assert (document["sustained"], document["rate"], document["lags"]) == (True, 2.5, [0, 1, 2])


def test_anything_else_unserializable_still_fails(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        write_result(tmp_path / "r.json", "e2e", {"x": object()}, time.monotonic())
