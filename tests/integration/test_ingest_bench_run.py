"""`forewarn bench ingest` end to end, small: a real worker process, the real broker, accounting closed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def test_bench_ingest_small_run_closes_its_accounting(stack: Any, tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    completed = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "bench", "ingest", "--json", str(out), "--readings", "5000",
         "--timeout-s", "60"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["sent"] == 5000 and result["invalid_sent"] == 50
    assert result["accepted"] == result["in_topic"] == 4950
    assert result["rejected"] == result["in_dlq"] == 50
    assert result["accounting_closed"] is True
    assert result["readings_per_s"] > 0 and result["baseline_readings_per_s"] > 0
    assert result["machine"]["cpu_count"] >= 1
