"""What a sensor normally looks like and how each failure mode bends it, keyed by sensor *name*.

Sensors are configuration, so the simulator cannot know a plant's sensors in advance. It recognises
them by keywords in their names (``oil_temperature`` is a temperature, ``motor_current`` a current) and
falls back to a neutral profile. Failure modes are defined per machine type for the shipped plant; any
other machine type gets the generic modes, resolved against whatever sensors it has, so a new config
simulates without code changes.

Documented effects (direction of the change as the fault grows; magnitudes are relative to the
sensor's nominal level, reached at the moment of failure):

==============  ===============  ==========================================================
machine type    mode             effect
==============  ===============  ==========================================================
pump            bearing_wear     vibration up strongly, temperature up, current up slightly
pump            seal_leak        pressure down, current up, temperature up slightly
pump            impeller_wear    vibration up, pressure down, rotational_speed down slightly
compressor      bearing_wear     vibration up strongly, temperature up, oil_temperature up
compressor      air_leak         pressure down, current up, temperature up slightly
compressor      cooler_fouling   oil_temperature up, temperature up, current up
cnc_spindle     bearing_wear     vibration up strongly, temperature up, current up slightly
cnc_spindle     tool_wear        torque up, current up, vibration up, temperature up slightly
cnc_spindle     misalignment     vibration up, temperature up, torque up slightly
(any other)     wear / leak      the same keywords, on the sensors the type has
(any other)     drift            when no keyword matches: a stable pseudo-random subset drifts
==============  ===============  ==========================================================
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from forewarn.assets import MachineType, Sensor

MEAN_LOAD = 0.65
"""The load factor's long-run mean: a sensor's ``load`` sensitivity moves it around this point."""


@dataclass(frozen=True)
class SensorProfile:
    """Healthy behaviour of a kind of sensor, as fractions so it fits any unit and range.

    ``nominal`` is where the healthy value sits inside the valid range (0 = min, 1 = max); ``noise`` and
    ``load`` are relative to the nominal level (the "scale", see :func:`sensor_scale`).
    """

    nominal: float
    noise: float
    load: float


# First matching keyword wins, so the more specific names come first.
PROFILES: tuple[tuple[str, SensorProfile], ...] = (
    ("vibration", SensorProfile(nominal=0.04, noise=0.08, load=0.30)),
    ("temperature", SensorProfile(nominal=0.40, noise=0.008, load=0.12)),
    ("pressure", SensorProfile(nominal=0.15, noise=0.02, load=0.20)),
    ("speed", SensorProfile(nominal=0.30, noise=0.004, load=0.04)),
    ("rpm", SensorProfile(nominal=0.30, noise=0.004, load=0.04)),
    ("current", SensorProfile(nominal=0.15, noise=0.03, load=0.45)),
    ("torque", SensorProfile(nominal=0.10, noise=0.03, load=0.50)),
    ("flow", SensorProfile(nominal=0.40, noise=0.02, load=0.30)),
    ("wear", SensorProfile(nominal=0.10, noise=0.01, load=0.0)),
)
DEFAULT_PROFILE = SensorProfile(nominal=0.5, noise=0.01, load=0.05)
SETTING_PROFILE = SensorProfile(nominal=0.5, noise=0.001, load=0.02)


def profile_for(name: str, sensor: Sensor) -> SensorProfile:
    if sensor.role == "setting":
        return SETTING_PROFILE
    lowered = name.lower()
    for keyword, profile in PROFILES:
        if keyword in lowered:
            return profile
    return DEFAULT_PROFILE


def sensor_scale(sensor: Sensor, profile: SensorProfile) -> tuple[float, float]:
    """(nominal value, scale): the scale never collapses to ~0 for a nominal near zero."""
    span = sensor.max - sensor.min
    nominal = sensor.min + profile.nominal * span
    return nominal, max(abs(nominal), 0.05 * span)


@dataclass(frozen=True)
class FailureMode:
    """A way a machine degrades: effects by sensor keyword, reached in full at failure.

    ``noise_growth`` widens the noise of the sensors it names (a worn bearing rattles, it does not just
    vibrate more on average); ``hours`` bounds how long the degradation lasts before the failure.
    """

    name: str
    effects: dict[str, float]
    hours: tuple[float, float]
    noise_growth: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedMode:
    """A failure mode applied to one machine type: per-sensor effects in the type's sensor order."""

    name: str
    effects: tuple[float, ...]
    noise_growth: tuple[float, ...]
    hours: tuple[float, float]

    def affected(self, sensor_names: tuple[str, ...]) -> dict[str, float]:
        return {name: e for name, e in zip(sensor_names, self.effects, strict=True) if e != 0.0}


def _bearing(hours: tuple[float, float] = (24, 96), **extra: float) -> FailureMode:
    return FailureMode(
        "bearing_wear",
        {"vibration": 3.0, "temperature": 0.22, "current": 0.06, **extra},
        hours,
        {"vibration": 1.5},
    )


MODES_BY_TYPE: dict[str, tuple[FailureMode, ...]] = {
    "pump": (
        _bearing(),
        FailureMode("seal_leak", {"pressure": -0.35, "current": 0.18, "temperature": 0.05}, (8, 48)),
        FailureMode(
            "impeller_wear",
            {"vibration": 1.2, "pressure": -0.15, "speed": -0.03},
            (12, 72),
            {"vibration": 0.8},
        ),
    ),
    "compressor": (
        FailureMode(
            "bearing_wear",
            {"vibration": 3.0, "oil_temperature": 0.25, "temperature": 0.18},
            (24, 96),
            {"vibration": 1.5},
        ),
        FailureMode("air_leak", {"pressure": -0.30, "current": 0.20, "temperature": 0.04}, (8, 48)),
        FailureMode(
            "cooler_fouling", {"oil_temperature": 0.35, "temperature": 0.22, "current": 0.08}, (12, 72)
        ),
    ),
    "cnc_spindle": (
        _bearing(),
        FailureMode(
            "tool_wear",
            {"torque": 0.45, "current": 0.30, "vibration": 0.6, "temperature": 0.06},
            (6, 24),
            {"torque": 0.5},
        ),
        FailureMode(
            "misalignment",
            {"vibration": 2.0, "temperature": 0.15, "torque": 0.10},
            (12, 48),
            {"vibration": 1.0},
        ),
    ),
}

GENERIC_MODES: tuple[FailureMode, ...] = (
    FailureMode(
        "wear",
        {"vibration": 2.5, "temperature": 0.2, "current": 0.1, "torque": 0.25, "wear": 3.0},
        (12, 72),
        {"vibration": 1.0},
    ),
    FailureMode("leak", {"pressure": -0.3, "flow": -0.3, "current": 0.15}, (8, 48)),
)


def _effect_for(name: str, effects: dict[str, float]) -> float:
    """The effect on sensor ``name``: an exact name beats a keyword, longer keywords beat shorter."""
    lowered = name.lower()
    if lowered in effects:
        return effects[lowered]
    for keyword in sorted(effects, key=len, reverse=True):
        if keyword in lowered:
            return effects[keyword]
    return 0.0


def _resolve(mode: FailureMode, names: tuple[str, ...], kind: MachineType) -> ResolvedMode:
    effects = tuple(0.0 if kind.sensors[n].role == "setting" else _effect_for(n, mode.effects) for n in names)
    growth = tuple(
        _effect_for(n, mode.noise_growth) if e else 0.0 for n, e in zip(names, effects, strict=True)
    )
    return ResolvedMode(mode.name, effects, growth, mode.hours)


def _drift_mode(names: tuple[str, ...], kind: MachineType) -> ResolvedMode:
    """For sensors no keyword recognises (C-MAPSS ``s1..s21``): a stable subset drifts up or down.

    The subset and directions come from a CRC of the sensor name, not ``hash()``, so they are the same
    in every process (Python salts ``hash`` per process, which would break --seed determinism).
    """
    effects = []
    for name in names:
        if kind.sensors[name].role == "setting":
            effects.append(0.0)
            continue
        crc = zlib.crc32(name.encode())
        chosen = crc % 3 != 0
        sign = 1.0 if (crc >> 8) % 2 == 0 else -1.0
        effects.append(sign * (0.01 + 0.02 * ((crc >> 12) % 4)) if chosen else 0.0)
    if not any(effects):  # e.g. one sensor whose CRC was not chosen: still degrade it
        effects = [0.0 if kind.sensors[n].role == "setting" else 0.05 for n in names]
    return ResolvedMode("drift", tuple(effects), tuple(0.0 for _ in names), (12, 72))


def modes_for(type_name: str, kind: MachineType) -> tuple[ResolvedMode, ...]:
    """The failure modes of a machine type, each touching at least two sensors where the type has two.

    Shipped plant types use their own table; other types get the generic modes that recognise at least
    two of their sensors (one if they have only one), else the name-hashed drift mode.
    """
    names = kind.sensor_names
    measured = [n for n in names if kind.sensors[n].role != "setting"]
    if type_name in MODES_BY_TYPE:
        resolved = tuple(_resolve(m, names, kind) for m in MODES_BY_TYPE[type_name])
        usable = tuple(m for m in resolved if any(m.effects))
        if usable:
            return usable
    needed = min(2, len(measured)) or 1
    generic = tuple(_resolve(m, names, kind) for m in GENERIC_MODES)
    usable = tuple(m for m in generic if sum(1 for e in m.effects if e) >= needed)
    return usable or (_drift_mode(names, kind),)
