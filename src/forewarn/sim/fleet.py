"""The simulated fleet: which machines exist and, per machine and sensor, the healthy operating point.

Everything here is laid out as (machine, sensor) arrays over the union of all types' sensors, so one
numpy expression computes a time step for every machine of every type at once; ``applicable`` masks
the sensors a machine's type does not have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import reduce

import numpy as np

from forewarn.assets import AssetConfig
from forewarn.sim.batch import Machines
from forewarn.sim.modes import ResolvedMode, modes_for, profile_for, sensor_scale


@dataclass(frozen=True)
class Fleet:
    machines: Machines
    sensors: tuple[str, ...]
    type_index: np.ndarray  # (N,) index into type_names
    type_names: tuple[str, ...]
    applicable: np.ndarray  # (N, S) bool
    nominal: np.ndarray  # (N, S) healthy level before per-machine offsets
    scale: np.ndarray  # (N, S)
    noise: np.ndarray  # (N, S) noise std relative to scale
    load: np.ndarray  # (N, S) sensitivity to the load factor
    low: np.ndarray  # (N, S) valid range
    high: np.ndarray  # (N, S)
    modes: tuple[ResolvedMode, ...]  # every type's modes, globally indexed
    mode_effects: np.ndarray  # (M, S)
    mode_growth: np.ndarray  # (M, S)
    modes_of_type: tuple[tuple[int, ...], ...]  # per type, global mode indices
    step_ms: int  # the simulation's time step: gcd of the machines' sampling intervals
    every: np.ndarray  # (N,) a machine reports every `every` steps
    phase: np.ndarray  # (N,) ... at steps where (k + phase) % every == 0

    @property
    def size(self) -> int:
        return len(self.machines)


def build_fleet(
    config: AssetConfig, machines: int, interval_ms: int | None, rng: np.random.Generator
) -> Fleet:
    """Machines take the config's types in turn (pump-001, compressor-002, ...) so every type is present."""
    if machines < 1:
        raise ValueError("the fleet needs at least one machine")
    type_names = tuple(config.machine_types)
    sensors = tuple(dict.fromkeys(s for t in config.machine_types.values() for s in t.sensor_names))
    column = {name: i for i, name in enumerate(sensors)}
    n_types, n_sensors = len(type_names), len(sensors)

    per_type = np.full((6, n_types, n_sensors), np.nan)  # nominal, scale, noise, load, low, high
    modes: list[ResolvedMode] = []
    mode_rows: list[np.ndarray] = []
    growth_rows: list[np.ndarray] = []
    modes_of_type: list[tuple[int, ...]] = []
    for t, type_name in enumerate(type_names):
        kind = config.machine_types[type_name]
        for name in kind.sensor_names:
            sensor, s = kind.sensors[name], column[name]
            profile = profile_for(name, sensor)
            nominal, scale = sensor_scale(sensor, profile)
            per_type[:, t, s] = (nominal, scale, profile.noise, profile.load, sensor.min, sensor.max)
        indices = []
        for mode in modes_for(type_name, kind):
            effects, growth = np.zeros(n_sensors), np.zeros(n_sensors)
            for name, e, g in zip(kind.sensor_names, mode.effects, mode.noise_growth, strict=True):
                effects[column[name]], growth[column[name]] = e, g
            indices.append(len(modes))
            modes.append(mode)
            mode_rows.append(effects)
            growth_rows.append(growth)
        modes_of_type.append(tuple(indices))

    type_index = np.arange(machines) % n_types
    width = max(3, len(str(machines)))
    ids = tuple(f"{type_names[t]}-{i + 1:0{width}d}" for i, t in enumerate(type_index.tolist()))
    nominal, scale, noise, load, low, high = (per_type[k][type_index] for k in range(6))
    applicable = ~np.isnan(nominal)

    intervals = [interval_ms or config.machine_types[t].sampling_interval_ms for t in type_names]
    if min(intervals) <= 0:
        raise ValueError("the sampling interval must be longer than zero")
    step = reduce(math.gcd, intervals)
    every = np.array([intervals[t] // step for t in type_index.tolist()], dtype=np.int64)
    phase = (rng.integers(0, 1 << 30, machines) % every).astype(np.int64)
    return Fleet(
        machines=Machines(ids, tuple(type_names[t] for t in type_index.tolist())),
        sensors=sensors,
        type_index=type_index,
        type_names=type_names,
        applicable=applicable,
        nominal=nominal,
        scale=scale,
        noise=noise,
        load=load,
        low=low,
        high=high,
        modes=tuple(modes),
        mode_effects=np.array(mode_rows).reshape(len(modes), n_sensors),
        mode_growth=np.array(growth_rows).reshape(len(modes), n_sensors),
        modes_of_type=tuple(modes_of_type),
        step_ms=step,
        every=every,
        phase=phase,
    )


def with_mode(fleet: Fleet, mode: ResolvedMode) -> Fleet:
    """The fleet with one more failure mode (the last; effects over ``fleet.sensors``) that no type's regular
    schedule picks: a drift offers it explicitly (see :meth:`Lifecycle.allow_new_mode`)."""
    if len(mode.effects) != len(fleet.sensors):
        raise ValueError("the mode's effects must follow the fleet's sensor order")
    return replace(
        fleet,
        modes=(*fleet.modes, mode),
        mode_effects=np.vstack([fleet.mode_effects, np.array(mode.effects)]),
        mode_growth=np.vstack([fleet.mode_growth, np.array(mode.noise_growth)]),
    )
