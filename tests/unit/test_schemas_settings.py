from __future__ import annotations

import pytest
from pydantic import ValidationError

from forewarn.schemas import Reading, to_epoch_ms
from forewarn.settings import ForewarnSettings
from forewarn.stack.config import StackSettings
from forewarn.stack.install import _java_major


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", 1767225600000),
        ("2026-01-01T01:00:00+01:00", 1767225600000),
        ("2026-01-01T00:00:00.250Z", 1767225600250),
        (1767225600000, 1767225600000),
    ],
)
def test_timestamps(value: object, expected: int) -> None:
    assert to_epoch_ms(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2026-01-01T00:00:00", True, None, float("nan")])
def test_bad_timestamps_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):
        to_epoch_ms(value)


def test_reading_rejects_extra_fields() -> None:
    with pytest.raises(ValidationError):
        Reading.model_validate(
            {"machine_id": "m", "machine_type": "pump", "ts": 1, "values": {}, "colour": "red"}
        )


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    monkeypatch.setenv("FOREWARN_KAFKA__TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("FOREWARN_STACK__REDIS_PORT", "23456")
    settings = StackSettings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1234"
    assert settings.kafka.topic("sensor.readings") == "t1.sensor.readings"
    assert settings.stack.redis_port == 23456


def test_invalid_setting_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_KAFKA__TOPIC_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="topic_partitions"):
        ForewarnSettings()


@pytest.mark.parametrize(
    ("text", "major"),
    [('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_392"', 8), ('openjdk version "21" x', 21)],
)
def test_java_version_parsing(text: str, major: int) -> None:
    assert _java_major(text) == major


def test_kafka_format_survives_a_cluster_id_starting_with_a_dash(tmp_path, monkeypatch) -> None:
    """A random base64 id starts with '-' one time in 64; argparse must not read it as an option."""
    import subprocess
    import uuid

    from forewarn.stack.components import Kafka
    from forewarn.stack.config import StackOptions
    from forewarn.stack.process import ProcessTracker

    class DashId:
        bytes = b"\xfb" + bytes(15)  # base64url: "-w..."

    calls: list[list[str]] = []
    monkeypatch.setattr(uuid, "uuid4", lambda: DashId)
    monkeypatch.setattr(subprocess, "run", lambda argv, **_: calls.append(argv) or subprocess.CompletedProcess(argv, 0))
    kafka = Kafka(StackSettings(stack=StackOptions(state_dir=tmp_path)), ProcessTracker(tmp_path))
    monkeypatch.setattr(kafka, "_classpath", lambda: "libs/*")
    kafka.prepare()
    (format_call,) = calls
    assert any(arg.startswith("--cluster-id=-") for arg in format_call)
