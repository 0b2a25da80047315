"""What a training-set build is asked for: horizon, RUL cap, cleaning and normalization knobs.

Everything here changes the built rows, so all of it goes into the manifest's config hash; settings that
only change how the work is spread (Spark buckets, partitions) do not belong here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from forewarn.assets import parse_duration_ms

_CYCLES = re.compile(r"^\s*(\d+)\s*(cycles?|readings?)\s*$")
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Horizon:
    """A failure horizon in event time (``24h``) or in a machine's own readings (``30cycles``)."""

    text: str
    ms: int | None = None
    cycles: int | None = None

    @classmethod
    def parse(cls, text: str) -> Horizon:
        match = _CYCLES.match(text)
        if match:
            cycles = int(match.group(1))
            if cycles < 1:
                raise ValueError("a horizon in cycles must be at least 1")
            return cls(text=text.strip(), cycles=cycles)
        try:
            ms = parse_duration_ms(text)
        except ValueError:
            raise ValueError(f"horizon {text!r} is neither a duration (24h, 90m) nor a count (30cycles)") from None
        if ms <= 0:
            raise ValueError("the horizon must be longer than zero")
        return cls(text=text.strip(), ms=ms)

    @property
    def in_cycles(self) -> bool:
        return self.cycles is not None

    @property
    def rul_unit(self) -> str:
        return "cycles" if self.in_cycles else "hours"


@dataclass(frozen=True)
class BuildSpec:
    config: str = "plant"
    horizon: Horizon = Horizon(text="24h", ms=24 * HOUR_MS)
    rul_cap: float | None = None  # in the RUL unit (hours, or cycles)
    short_gap_intervals: float = 5.0  # a missing value is imputed when the last one is this many intervals old
    condition_decimals: int = 1  # condition keys are rounded to this many decimals
    grain_ms: int | None = None  # aggregate to one row per machine and grain (the last reading)
    feature_resets: bool = False  # reset features at maintenance (online does not yet: skew, see docs)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["horizon"] = self.horizon.text
        return data

    def label_definition(self) -> dict[str, Any]:
        h = self.horizon
        within = f"{h.cycles} readings" if h.in_cycles else f"{h.text} of event time"
        return {
            "failure_within_horizon": (
                f"1 when the machine's next failure (ground.truth 'failure' or feedback 'confirmed_failure') "
                f"comes within {within} of the reading and before its next maintenance; 0 when the next "
                f"maintenance comes first, when {within} were observed without failure, or inside the alert "
                "window of 'false_alarm' feedback (unless a recorded failure makes it 1); null (censored) "
                "otherwise"
            ),
            "rul": (
                f"{h.rul_unit} from the reading to the next failure in the same life (up to the next "
                f"maintenance), capped at {self.rul_cap}; when no failure follows, the cap if the observed "
                "failure-free span reaches it, else null"
            ),
            "horizon": h.text,
            "rul_unit": h.rul_unit,
            "rul_cap": self.rul_cap,
        }
