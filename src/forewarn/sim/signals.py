"""Sensor values for a block of time steps: operating load, degradation, noise, then the imperfections
real plants add (glitches, dropouts, out-of-range spikes). Pure numpy, no I/O.

The load factor is a deterministic function of event time per machine (a production cycle of tens of
minutes and a day/night pattern) plus white noise, so consecutive blocks join without carrying state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forewarn.sim.drift import ActiveDrift
from forewarn.sim.fleet import Fleet
from forewarn.sim.modes import MEAN_LOAD
from forewarn.sim.options import DAY_MS

TWO_PI = 2.0 * np.pi


@dataclass
class MachineTraits:
    """Per-machine randomness drawn once (and re-drawn after service): why two pumps differ."""

    offset: np.ndarray  # (N, S) multiplicative deviation of the operating point
    cycle_ms: np.ndarray  # (N,) production cycle length
    cycle_phase: np.ndarray  # (N,)
    cycle_amp: np.ndarray  # (N,)
    day_phase: np.ndarray  # (N,)
    day_amp: np.ndarray  # (N,)

    @classmethod
    def draw(cls, fleet: Fleet, rng: np.random.Generator) -> MachineTraits:
        n, s = fleet.size, len(fleet.sensors)
        return cls(
            offset=1.0 + rng.normal(0.0, 0.04, (n, s)),
            cycle_ms=rng.uniform(20, 90, n) * 60_000,
            cycle_phase=rng.uniform(0, TWO_PI, n),
            cycle_amp=rng.uniform(0.05, 0.2, n),
            day_phase=rng.uniform(0, TWO_PI, n),
            day_amp=rng.uniform(0.02, 0.12, n),
        )

    def redraw_offsets(self, machines: list[int], rng: np.random.Generator) -> None:
        """After service a machine runs at a slightly different point: baselines must be per service."""
        if machines:
            index = np.array(sorted(set(machines)))
            self.offset[index] = 1.0 + rng.normal(0.0, 0.04, (index.size, self.offset.shape[1]))


def load_factor(
    times: np.ndarray, traits: MachineTraits, rng: np.random.Generator, drift: ActiveDrift | None = None
) -> np.ndarray:
    """(T, N) load in [0.15, 1]: production cycles, a daily pattern, and step-to-step noise.

    A regime drift replaces the mean and the cycle's depth of its machines from its onset on."""
    t = times.astype(np.float64)[:, None]
    cycle = traits.cycle_amp * np.sin(TWO_PI * t / traits.cycle_ms + traits.cycle_phase)
    day = traits.day_amp * np.sin(TWO_PI * t / DAY_MS + traits.day_phase)
    noise = rng.normal(0.0, 0.02, cycle.shape)
    base = MEAN_LOAD + cycle
    if drift is not None:
        base = drift.base_load(times, base, cycle)
    return np.clip(base + day + noise, 0.15, 1.0)


def clean_values(
    fleet: Fleet,
    traits: MachineTraits,
    load: np.ndarray,
    severity: np.ndarray,
    mode: np.ndarray,
    rng: np.random.Generator,
    drift: ActiveDrift | None = None,
    times: np.ndarray | None = None,
) -> np.ndarray:
    """(T, N, S) physically plausible values within each sensor's valid range (NaN where n/a).

    A sensor drift (offset, gain) bends what its sensors report, at the steps ``times``, before the
    values are clipped to the valid range as any reading is."""
    scale = fleet.scale[None]
    effects = fleet.mode_effects[mode][None]  # (1, N, S)
    growth = fleet.mode_growth[mode][None]
    sev = severity[:, :, None]
    level = fleet.nominal * traits.offset
    values = (
        level[None]
        + scale * fleet.load[None] * (load[:, :, None] - MEAN_LOAD)
        + scale * effects * sev
        + scale
        * fleet.noise[None]
        * (1.0 + growth * sev)
        * rng.standard_normal(sev.shape[:2] + scale.shape[2:])
    )
    if drift is not None and times is not None:
        drift.distort(values, times, level, scale[0])
    values = np.clip(values, fleet.low[None], fleet.high[None])
    return np.round(values, 3)


def add_glitches(
    values: np.ndarray, previous: np.ndarray, fleet: Fleet, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """In place: a few values become stuck (repeat the last one), spike, or read zero, all in range.
    Returns the (T, N, S) mask of glitched values."""
    if rate <= 0:
        return np.zeros(values.shape, dtype=bool)
    hit = (rng.random(values.shape) < rate) & fleet.applicable[None]
    count = int(hit.sum())
    if not count:
        return hit
    t, n, s = np.nonzero(hit)
    kind = rng.integers(0, 3, count)
    before = np.where(t > 0, values[np.maximum(t - 1, 0), n, s], previous[n, s])
    spike = values[t, n, s] * rng.uniform(1.3, 2.0, count)
    zero = np.zeros(count)
    replaced = np.select([kind == 0, kind == 1], [before, spike], zero)
    low, high = fleet.low[n, s], fleet.high[n, s]
    replaced = np.where(np.isnan(replaced), values[t, n, s], replaced)
    values[t, n, s] = np.round(np.clip(replaced, low, high), 3)
    return hit


def add_outliers(values: np.ndarray, fleet: Fleet, rate: float, rng: np.random.Generator) -> np.ndarray:
    """In place: in a share of readings one sensor reads outside its valid range. Returns the (T, N) mask."""
    t_steps, n_machines, _ = values.shape
    hit = rng.random((t_steps, n_machines)) < rate if rate > 0 else np.zeros((t_steps, n_machines), bool)
    t, n = np.nonzero(hit)
    if t.size:
        count = t.size
        weights = fleet.applicable[n].astype(np.float64)
        # Pick one applicable sensor per hit reading.
        pick = (weights.cumsum(axis=1) > rng.random(count)[:, None] * weights.sum(axis=1)[:, None]).argmax(
            axis=1
        )
        low, high = fleet.low[n, pick], fleet.high[n, pick]
        span = high - low
        above = rng.random(count) < 0.7
        excess = span * rng.uniform(0.05, 0.5, count) + 1.0
        values[t, n, pick] = np.round(np.where(above, high + excess, low - excess), 3)
    return hit


def add_dropouts(values: np.ndarray, fleet: Fleet, rate: float, rng: np.random.Generator) -> np.ndarray:
    """In place: a share of values go missing (NaN). Returns the (T, N, S) mask of dropped values."""
    if rate <= 0:
        return np.zeros(values.shape, dtype=bool)
    hit = (rng.random(values.shape) < rate) & fleet.applicable[None]
    values[hit] = np.nan
    return hit
