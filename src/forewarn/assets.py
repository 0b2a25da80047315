"""The asset config: machine types, their sensors and feature windows, declared in YAML.

Sensors are configuration, not code: a plant with other sensors works by writing a config. The three
shipped configs live in ``forewarn/resources/assets`` and are addressed by name (``plant``, ``cmapss``,
``ai4i``); anything else is a path.

Errors name the file, the line and key, and the fix, because the person reading them is editing YAML.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AssetConfigError(ValueError):
    """An asset config that cannot be used; the message says where and how to fix it."""


def parse_duration_ms(text: str | int | float) -> int:
    """``"10m"`` -> 600000. Bare numbers are seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as '10m', got a boolean")
    if isinstance(text, int | float):
        return int(text * 1000)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration such as '500ms', '30s', '10m', '1h' or '2d', got {text!r}")
    return int(float(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1000)


class Sensor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str = Field(description="Physical unit, for people and plots.")
    min: float = Field(description="Lowest physically valid value; lower readings are rejected.")
    max: float = Field(description="Highest physically valid value; higher readings are rejected.")
    role: str = Field("sensor", pattern="^(sensor|setting)$", description="'setting' marks operating settings.")

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Sensor:
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min >= self.max:
            raise ValueError(f"valid range must be finite with min < max, got min={self.min} max={self.max}")
        return self


class Window(BaseModel):
    """A feature window: the last ``duration`` of event time, or the last ``count`` readings."""

    model_config = ConfigDict(frozen=True)

    name: str
    duration_ms: int | None = None
    count: int | None = None

    @property
    def is_time(self) -> bool:
        return self.duration_ms is not None


class MachineType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    sampling_interval: str = Field("1s", description="Nominal time between readings of one machine.")
    sensors: dict[str, Sensor]
    time_windows: list[str] = Field(default_factory=list, description="Event-time windows, e.g. [10m, 1h].")
    count_windows: list[int] = Field(default_factory=list, description="Windows in readings, e.g. [5, 30].")
    condition_keys: list[str] = Field(
        default_factory=list,
        description="Settings whose (rounded) values define an operating condition, for normalization.",
    )
    baseline_readings: int = Field(
        50, ge=1, description="Readings after start or maintenance that define the machine's own baseline."
    )

    @field_validator("sensors")
    @classmethod
    def _sensor_names(cls, sensors: dict[str, Sensor]) -> dict[str, Sensor]:
        if not sensors:
            raise ValueError("a machine type needs at least one sensor")
        for name in sensors:
            if not _NAME.match(name):
                raise ValueError(f"sensor name {name!r} must be letters, digits and underscores")
        return sensors

    @field_validator("sampling_interval")
    @classmethod
    def _sampling(cls, value: str) -> str:
        parse_duration_ms(value)
        return value

    @field_validator("time_windows")
    @classmethod
    def _time_windows(cls, value: list[str]) -> list[str]:
        for item in value:
            if parse_duration_ms(item) <= 0:
                raise ValueError(f"window {item!r} must be longer than zero")
        return value

    @field_validator("count_windows")
    @classmethod
    def _count_windows(cls, value: list[int]) -> list[int]:
        for item in value:
            if item < 2:
                raise ValueError(f"count window {item} must cover at least 2 readings")
        return value

    @model_validator(mode="after")
    def _has_windows_and_known_conditions(self) -> MachineType:
        if not self.time_windows and not self.count_windows:
            raise ValueError("declare at least one of time_windows or count_windows")
        for key in self.condition_keys:
            if key not in self.sensors:
                raise ValueError(f"condition key {key!r} is not one of this type's sensors")
        return self

    @cached_property
    def windows(self) -> tuple[Window, ...]:
        time = [Window(name=w.strip(), duration_ms=parse_duration_ms(w)) for w in self.time_windows]
        count = [Window(name=f"n{c}", count=c) for c in self.count_windows]
        return tuple(time + count)

    @cached_property
    def sampling_interval_ms(self) -> int:
        return parse_duration_ms(self.sampling_interval)

    @cached_property
    def sensor_names(self) -> tuple[str, ...]:
        return tuple(self.sensors)


class AssetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    allowed_lateness: str = Field("30s", description="How late (event time) a reading may arrive and count.")
    max_future_skew: str = Field("5m", description="How far in the future a timestamp may be before rejection.")
    machine_types: dict[str, MachineType]
    source_path: str | None = Field(None, exclude=True)

    @field_validator("allowed_lateness", "max_future_skew")
    @classmethod
    def _durations(cls, value: str) -> str:
        parse_duration_ms(value)
        return value

    @field_validator("machine_types")
    @classmethod
    def _types(cls, value: dict[str, MachineType]) -> dict[str, MachineType]:
        if not value:
            raise ValueError("declare at least one machine type")
        return value

    @cached_property
    def allowed_lateness_ms(self) -> int:
        return parse_duration_ms(self.allowed_lateness)

    @cached_property
    def max_future_skew_ms(self) -> int:
        return parse_duration_ms(self.max_future_skew)

    def machine_type(self, name: str) -> MachineType:
        try:
            return self.machine_types[name]
        except KeyError:
            known = ", ".join(sorted(self.machine_types))
            raise KeyError(f"unknown machine type {name!r}; this config declares: {known}") from None


SHIPPED_CONFIGS = ("plant", "cmapss", "ai4i")


def shipped_config_path(name: str) -> Path:
    return Path(str(resources.files("forewarn") / "resources" / "assets" / f"{name}.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text in SHIPPED_CONFIGS:
        return shipped_config_path(text)
    return Path(text)


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping key, to point errors at the right line."""


def _key_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            lines[key_path] = key_node.start_mark.line + 1
            _key_lines(value_node, key_path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _key_lines(item, (*path, index), lines)


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    # Pydantic's loc may name a field the YAML lacks (a missing key): fall back to its parent.
    for end in range(len(loc), 0, -1):
        key = tuple(str(p) if not isinstance(p, int) else p for p in loc[:end])
        if key in lines:
            return lines[key]
    return None


_FIXES = {
    "missing": "add the key",
    "extra_forbidden": "remove the key or fix its spelling",
    "float_parsing": "write a number",
    "int_parsing": "write a whole number",
}


def load_asset_config(name_or_path: str | Path) -> AssetConfig:
    path = resolve_config_path(name_or_path)
    if not path.is_file():
        shipped = ", ".join(SHIPPED_CONFIGS)
        raise AssetConfigError(
            f"asset config {str(name_or_path)!r} not found (looked at {path}); "
            f"pass a path to a YAML file or one of the shipped configs: {shipped}"
        )
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise AssetConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from exc
    if not isinstance(raw, dict):
        raise AssetConfigError(f"{path}: the top level must be a mapping with 'name' and 'machine_types'")
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    try:
        return AssetConfig.model_validate({**raw, "source_path": str(path)})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_for(loc, lines)
            key = ".".join(str(p) for p in loc) or "(top level)"
            fix = _FIXES.get(err["type"], "correct the value")
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: {key}: {err['msg']} ({fix})")
        raise AssetConfigError("invalid asset config\n  " + "\n  ".join(problems)) from None
