"""The ingest benchmark's own parts: its data breaks readings the way it claims, and the CLI is wired."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from typer.testing import CliRunner

from forewarn.assets import load_asset_config
from forewarn.bench.ingest import INVALID_KINDS, IngestBenchConfig, _read_response, _readings
from forewarn.cli.main import build_app
from forewarn.reading_check import Rejection
from forewarn.services.ingest.validation import ReadingValidator


def test_bench_data_has_the_requested_share_of_invalid_readings_of_every_kind() -> None:
    config = IngestBenchConfig(readings=6000, invalid_ratio=0.01)
    items, invalid = _readings(config)
    validator = ReadingValidator(load_asset_config("plant"))
    now_ms = int(time.time() * 1000)
    results = [validator.check(item, now_ms) for item in items]
    reasons = Counter(r.reason.value for r in results if isinstance(r, Rejection))
    assert invalid == 60 == sum(reasons.values())
    assert set(reasons) == set(INVALID_KINDS)


def test_bench_reads_a_keep_alive_response() -> None:
    async def read() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n"
                         b'{"a": 1}    HTTP/1.1 ...')
        return await _read_response(reader)

    assert asyncio.run(read()) == (200, b'{"a": 1}    ')


def test_bench_ingest_is_a_cli_command() -> None:
    result = CliRunner().invoke(build_app(), ["bench", "ingest", "--help"])
    assert result.exit_code == 0, result.output
    assert "--json" in result.output and "--readings" in result.output
