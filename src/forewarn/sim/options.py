"""What a simulation run is asked to do: one immutable value, so the same options and seed always give
the same readings whichever sink they go to."""

from __future__ import annotations

from dataclasses import dataclass

from forewarn.sim.drift import DriftSpec

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class SimOptions:
    machines: int = 20
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    duration_ms: int | None = DAY_MS
    """Simulated time to cover; None runs until stopped (live demos)."""
    interval_ms: int | None = None
    """Per-machine sampling interval; None takes each machine type's interval from the config."""
    seed: int = 0
    degrading_fraction: float = 0.3
    """About this share of machines starts to degrade during the run (per week when unbounded).
    A repaired machine may degrade again, with the same odds over the time left."""
    maintenance_every_ms: int | None = 7 * DAY_MS
    """Mean time between scheduled maintenances of a machine; None disables them."""
    glitch_rate: float = 0.001
    """Share of sensor values replaced by a plausible but wrong value (stuck, spike, zero)."""
    dropout_rate: float = 0.002
    """Share of sensor values missing from an otherwise delivered reading."""
    missing_rate: float = 0.001
    """Share of readings never delivered."""
    outlier_rate: float = 0.0005
    """Share of readings with one value outside the sensor's valid range (ingest dead-letters them)."""
    warm_start: bool = True
    """Let some degradations be already under way at the start, as in a plant that has been running."""
    fleet_seed: int | None = None
    """Seed of the fleet and the machines' traits (operating points, duty cycles); None: ``seed``.
    Two runs with the same fleet seed and another seed are the same plant in another week."""
    drift: DriftSpec | None = None
    """A change to the plant from some instant on (see :mod:`forewarn.sim.drift`); None: a clean run."""

    def __post_init__(self) -> None:
        if self.machines < 1:
            raise ValueError("--machines must be at least 1")
        if self.duration_ms is not None and self.duration_ms <= 0:
            raise ValueError("--duration must be longer than zero")
        if self.interval_ms is not None and self.interval_ms <= 0:
            raise ValueError("--interval must be longer than zero")
        for name in ("degrading_fraction", "glitch_rate", "dropout_rate", "missing_rate", "outlier_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.drift is not None and self.duration_ms is not None and self.drift.at_ms >= self.duration_ms:
            raise ValueError(
                f"--drift-at ({self.drift.at_ms / 3_600_000:g}h) must fall inside --duration "
                f"({self.duration_ms / 3_600_000:g}h), or the drift never happens"
            )

    @property
    def traits_seed(self) -> int:
        return self.seed if self.fleet_seed is None else self.fleet_seed
