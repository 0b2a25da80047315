"""Command-line time values: event-time starts, durations, speed-ups."""

from __future__ import annotations

import math
import time

from forewarn.assets import parse_duration_ms
from forewarn.errors import UserError
from forewarn.schemas import to_epoch_ms
from forewarn.sim.options import DAY_MS


def parse_start(text: str | None) -> int | None:
    """RFC 3339 text (``2026-01-01T00:00:00Z``) or epoch milliseconds."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        return to_epoch_ms(int(value) if value.lstrip("-").isdigit() else value)
    except ValueError as exc:
        raise UserError(f"--start: {exc}") from None


def parse_duration(text: str, option: str) -> int:
    try:
        value = parse_duration_ms(text)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None
    if value <= 0:
        raise UserError(f"{option} must be longer than zero, got {text!r}")
    return value


def parse_speedup(value: float | None) -> float | None:
    """0 and inf both mean 'as fast as possible' (None)."""
    if value is None or value == 0 or math.isinf(value):
        return None
    if value < 0 or math.isnan(value):
        raise UserError(f"--speedup must be positive, 0 or inf, got {value}")
    return value


def default_start(duration_ms: int, paced_wall_s: float | None, now_ms: int | None = None) -> int:
    """Where event time starts when --start is not given.

    Unpaced runs (history) end at the last UTC midnight, so a day's runs agree and stay reproducible.
    Paced runs are placed so that event time reaches "now" just as the run ends: it never lies in the
    future, which ingest would reject (max_future_skew), however high the speed-up.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if paced_wall_s is None:
        return (now // DAY_MS) * DAY_MS - duration_ms
    return ((now + int(paced_wall_s * 1000) - duration_ms) // 1000) * 1000
