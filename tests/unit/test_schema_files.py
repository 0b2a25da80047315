"""The committed JSON Schema files are what forewarn.schemas generates: a model change without
'forewarn schemas' fails here instead of leaving consumers with a stale contract."""

from __future__ import annotations

from pathlib import Path

from forewarn.cli.schemas import DEFAULT_PATH, render

ROOT = Path(__file__).resolve().parents[2]


def test_the_sensor_reading_schema_file_matches_the_models() -> None:
    committed = (ROOT / DEFAULT_PATH).read_text()
    assert committed == render(), "docs/schemas/sensor-reading.json is stale: run 'forewarn schemas' and commit it"

