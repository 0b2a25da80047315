"""Changes to the plant that a deployed model has not seen: what ``forewarn simulate --drift`` injects.

A drift starts at one instant (``at_ms`` after the run's start) and affects one machine type:

==================  ===========================================================================
kind                what changes from the onset on
==================  ===========================================================================
sensor-offset       the named sensors read ``value + size * scale`` (a recalibration)
sensor-gain         the named sensors read ``level + size * (value - level)`` around each machine's
                    healthy level: spread and load swings grow, the mean at rest does not
regime              a new duty cycle: mean load ``MEAN_LOAD -> size``, production cycles half as
                    deep; every load-sensitive sensor of the type moves
new-failure-mode    degradations may follow ``new_mode``, a signature no shipped mode of the type
                    has (an untouched sensor, or the opposite direction), and start more often
==================  ===========================================================================

:meth:`DriftSpec.resolve` turns the request into a :class:`DriftTruth` (the type, the sensors it
moves, the onset), which is what a drift detector is judged against. Everything here is pure; the
random draws the new failure mode needs come from a generator of its own, so the readings before the
onset are the same as without the drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from forewarn.assets import AssetConfig, MachineType
from forewarn.sim.modes import MEAN_LOAD, ResolvedMode, modes_for, profile_for

DriftKind = Literal["sensor-offset", "sensor-gain", "regime", "new-failure-mode"]
DRIFT_KINDS: tuple[str, ...] = get_args(DriftKind)
NEW_MODE_NAME = "new_mode"

DEFAULT_SIZE: dict[str, float] = {
    "sensor-offset": 0.5,  # of the sensor's scale: many noise std, obvious in a rolling mean
    "sensor-gain": 1.8,
    "regime": 0.9,  # the new mean load (MEAN_LOAD is 0.65)
    "new-failure-mode": 0.8,  # chance a healthy machine starts a new-mode fault within a day
}
SIZE_MEANING: dict[str, str] = {
    "sensor-offset": "offset in units of the sensor's scale (non-zero)",
    "sensor-gain": "gain around the healthy level (positive, not 1)",
    "regime": "new mean load, between 0.15 and 1",
    "new-failure-mode": "chance per machine per day of a new-mode fault, between 0 and 1 (exclusive)",
}
REGIME_CYCLE_SCALE = 0.5  # the new duty cycle runs heavier and steadier
NEW_MODE_EFFECT = 0.3  # relative to the sensor's scale, reached at failure
NEW_MODE_HOURS = (8.0, 36.0)
# Shipped types: a physically plausible fault that bends sensors the other way from every shipped mode
# (a blocked discharge raises pressure and lowers current; a slipping spindle loses speed and current).
NEW_MODE_SIGNATURES: dict[str, dict[str, float]] = {
    "pump": {"pressure": 1.0, "current": -1.0},
    "compressor": {"pressure": 1.0, "current": -1.0},
    "cnc_spindle": {"rotational_speed": -1.0, "current": -1.0},
}


@dataclass(frozen=True)
class DriftTruth:
    """What was injected, fully resolved against the asset config: the answer key for drift detection."""

    kind: str
    machine_type: str
    sensors: tuple[str, ...]
    """The sensors whose readings change (for a regime: every sensor that follows the load)."""
    at_ms: int
    """Onset, in ms after the run's start."""
    onset_ms: int
    """Onset as event time (epoch ms)."""
    size: float
    mode: str | None = None
    """The ground-truth mode name of the new failure mode's events, for ``new-failure-mode``."""
    signs: tuple[float, ...] = ()
    """For ``new-failure-mode``: the direction each sensor moves as the new fault grows."""
    mean_shift: tuple[float, ...] = ()
    """Per sensor, the expected change of its mean in units of the sensor's scale (``fleet.scale``):
    the offset; 0 for a gain (the spread grows instead); load sensitivity x load change for a regime;
    the new mode's effect at failure. How plainly each sensor moved, for judging a detector."""

    def describe(self) -> str:
        what = {
            "sensor-offset": f"offset {self.size:+g} x scale on",
            "sensor-gain": f"gain x{self.size:g} on",
            "regime": f"mean load -> {self.size:g}, moving",
            "new-failure-mode": f"failure mode {self.mode!r} moving",
        }[self.kind]
        return f"{self.kind} on {self.machine_type}: {what} {', '.join(self.sensors)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "machine_type": self.machine_type,
            "sensors": list(self.sensors),
            "at_ms": self.at_ms,
            "onset_ms": self.onset_ms,
            "size": self.size,
            "mode": self.mode,
            "mean_shift": dict(zip(self.sensors, self.mean_shift, strict=True)),
        }


@dataclass(frozen=True)
class DriftSpec:
    """A drift as asked for; ``None`` fields take the per-kind defaults when resolved."""

    kind: str
    at_ms: int
    machine_type: str | None = None
    sensors: tuple[str, ...] | None = None
    size: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"unknown drift kind {self.kind!r}; choose one of: {', '.join(DRIFT_KINDS)}")
        if self.at_ms < 0:
            raise ValueError(f"--drift-at must not be negative, got {self.at_ms} ms")
        if self.sensors is not None and not self.sensors:
            raise ValueError("--drift-sensors names no sensor; give a comma-separated list or leave it out")
        if self.kind == "regime" and self.sensors is not None:
            raise ValueError(
                "--drift-sensors does not apply to --drift regime: a new duty cycle moves every sensor "
                "that follows the load; leave --drift-sensors out"
            )
        if self.size is not None and not _size_ok(self.kind, self.size):
            raise ValueError(f"--drift-size for {self.kind} is the {SIZE_MEANING[self.kind]}; got {self.size}")

    def resolve(self, config: AssetConfig, start_ms: int = 0) -> DriftTruth:
        """Fill in the defaults and check names against ``config``; raises ValueError saying what to fix."""
        type_name = self._machine_type(config)
        kind = config.machine_types[type_name]
        if self.sensors is not None:
            self._check_sensors(type_name, kind)
        size = DEFAULT_SIZE[self.kind] if self.size is None else self.size
        signs: tuple[float, ...] = ()
        if self.kind == "regime":
            load = {n: profile_for(n, kind.sensors[n]).load for n in kind.sensor_names}
            sensors = tuple(n for n, coefficient in load.items() if coefficient != 0.0)
            shift = tuple(load[n] * (size - MEAN_LOAD) for n in sensors)
        elif self.kind == "new-failure-mode":
            signature = new_mode_signature(type_name, kind, self.sensors)
            sensors, signs = tuple(signature), tuple(signature.values())
            shift = tuple(NEW_MODE_EFFECT * sign for sign in signs)
        else:
            sensors = self.sensors or (_measured(kind)[0],)
            shift = tuple((size if self.kind == "sensor-offset" else 0.0) for _ in sensors)
        return DriftTruth(
            kind=self.kind,
            machine_type=type_name,
            sensors=sensors,
            at_ms=self.at_ms,
            onset_ms=start_ms + self.at_ms,
            size=size,
            mode=NEW_MODE_NAME if self.kind == "new-failure-mode" else None,
            signs=signs,
            mean_shift=shift,
        )

    def affected_sensors(self, config: AssetConfig) -> tuple[str, ...]:
        return self.resolve(config).sensors

    def _machine_type(self, config: AssetConfig) -> str:
        types = config.machine_types
        if self.machine_type is not None:
            if self.machine_type not in types:
                raise ValueError(
                    f"--drift-type: {config.name} has no machine type {self.machine_type!r}; "
                    f"its types are: {', '.join(types)}"
                )
            return self.machine_type
        if self.sensors is None:
            return next(iter(types))
        for name, kind in types.items():
            if set(self.sensors) <= set(kind.sensor_names):
                return name
        raise ValueError(
            f"--drift-sensors: no machine type of {config.name} has all of {', '.join(self.sensors)}; "
            + "; ".join(f"{name} has {', '.join(kind.sensor_names)}" for name, kind in types.items())
        )

    def _check_sensors(self, type_name: str, kind: MachineType) -> None:
        assert self.sensors is not None
        unknown = [s for s in self.sensors if s not in kind.sensors]
        if unknown:
            raise ValueError(
                f"--drift-sensors: machine type {type_name} has no sensor {', '.join(unknown)}; "
                f"its sensors are: {', '.join(kind.sensor_names)}"
            )
        settings = [s for s in self.sensors if kind.sensors[s].role == "setting"]
        if settings and self.kind == "new-failure-mode":
            raise ValueError(
                f"--drift-sensors: {', '.join(settings)} of {type_name} are operating settings, which "
                f"faults do not move; choose among {', '.join(_measured(kind))}"
            )


def _size_ok(kind: str, size: float) -> bool:
    if not math.isfinite(size):
        return False
    if kind == "sensor-offset":
        return size != 0.0
    if kind == "sensor-gain":
        return size > 0.0 and size != 1.0
    if kind == "regime":
        return 0.15 <= size <= 1.0
    return 0.0 < size < 1.0


def _measured(kind: MachineType) -> tuple[str, ...]:
    measured = tuple(n for n in kind.sensor_names if kind.sensors[n].role != "setting")
    return measured or kind.sensor_names


def new_mode_signature(
    type_name: str, kind: MachineType, sensors: tuple[str, ...] | None = None
) -> dict[str, float]:
    """Sensor -> direction of the new failure mode: what the type's shipped modes never do.

    A sensor no shipped mode touches moves down; a sensor the shipped modes move one way moves the
    other way. Shipped plant types use :data:`NEW_MODE_SIGNATURES` unless sensors are named.
    """
    modes = modes_for(type_name, kind)
    names = kind.sensor_names
    shipped: dict[str, set[float]] = {n: set() for n in names}
    for mode in modes:
        for name, effect in zip(names, mode.effects, strict=True):
            if effect:
                shipped[name].add(math.copysign(1.0, effect))

    def direction(name: str) -> float:
        signs = shipped[name]
        return -next(iter(signs)) if len(signs) == 1 else -1.0

    if sensors is not None:
        return {n: direction(n) for n in sensors}
    table = NEW_MODE_SIGNATURES.get(type_name, {})
    if table and all(n in kind.sensors for n in table):
        return dict(table)
    measured = _measured(kind)
    untouched = [n for n in measured if not shipped[n]]
    one_sided = [n for n in measured if len(shipped[n]) == 1]
    chosen = (untouched + one_sided + list(measured))[: min(2, len(measured))]
    return {n: direction(n) for n in dict.fromkeys(chosen)}


def new_mode(truth: DriftTruth, sensor_order: tuple[str, ...]) -> ResolvedMode:
    """The new failure mode as the fleet's mode tables hold it (effects over ``sensor_order``)."""
    effect = dict(zip(truth.sensors, truth.signs, strict=True))
    return ResolvedMode(
        NEW_MODE_NAME,
        tuple(NEW_MODE_EFFECT * effect.get(n, 0.0) for n in sensor_order),
        tuple(0.0 for _ in sensor_order),
        NEW_MODE_HOURS,
    )


@dataclass(frozen=True)
class ActiveDrift:
    """A resolved drift laid out on the fleet's (machine, sensor) arrays, applied block by block."""

    truth: DriftTruth
    machines: np.ndarray  # (N,) bool: machines of the drifted type
    columns: np.ndarray  # (S,) bool: the drifted sensors, in the fleet's sensor order

    @classmethod
    def build(cls, truth: DriftTruth, machine_types: tuple[str, ...], sensors: tuple[str, ...]) -> ActiveDrift:
        return cls(
            truth,
            np.array([t == truth.machine_type for t in machine_types], dtype=bool),
            np.array([s in truth.sensors for s in sensors], dtype=bool),
        )

    def active(self, times: np.ndarray) -> np.ndarray:
        """(T, N) True where a machine runs under the drift at that step."""
        return (times >= self.truth.onset_ms)[:, None] & self.machines[None, :]

    def base_load(self, times: np.ndarray, base: np.ndarray, cycle: np.ndarray) -> np.ndarray:
        """(T, N) mean load plus the production cycle, under the new regime where it applies (elsewhere
        ``base``, untouched, so the load without drift stays the same bit for bit)."""
        if self.truth.kind != "regime":
            return base
        return np.where(self.active(times), self.truth.size + cycle * REGIME_CYCLE_SCALE, base)

    def distort(self, values: np.ndarray, times: np.ndarray, level: np.ndarray, scale: np.ndarray) -> None:
        """In place on unclipped (T, N, S) values: what a recalibrated sensor reports."""
        if self.truth.kind not in ("sensor-offset", "sensor-gain"):
            return
        hit = self.active(times)[:, :, None] & self.columns[None, None, :]
        if self.truth.kind == "sensor-offset":
            changed = values + self.truth.size * scale[None]
        else:
            changed = level[None] + self.truth.size * (values - level[None])
        np.copyto(values, changed, where=hit)


def parse_sensor_list(text: str | None) -> tuple[str, ...] | None:
    """``"a, b"`` -> ("a", "b"); None or blank -> None (the kind's default)."""
    if text is None or not text.strip():
        return None
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    return names or None

