"""A thin edge over confluent-kafka: clients built from settings, with the delivery guarantees the
architecture promises (idempotent producer, acks=all; consumers commit only what they have processed).

Explicit keyword arguments win over the settings-derived defaults, so a service can tune one knob
without restating the rest.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from forewarn.settings import KafkaSettings


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached or did not confirm a delivery in time."""


def producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
    }
    config.update(overrides)
    return Producer(config)


def consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.min.bytes": 1,
    }
    config.update(overrides)
    return Consumer(config)


def admin(settings: KafkaSettings, **overrides: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers, **overrides})


def wait_for_topics(settings: KafkaSettings, names: list[str], timeout_s: float = 10.0) -> None:
    """Block until ``names`` exist in the broker's metadata."""
    import time

    client = admin(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        present = set(client.list_topics(timeout=timeout_s).topics)
        if all(name in present for name in names):
            return
        time.sleep(0.1)
    raise KafkaUnavailable(f"topics {names} did not appear within {timeout_s}s")
