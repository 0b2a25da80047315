"""Settings of the features service: FOREWARN_FEATURES__* plus the shared Kafka/Redis settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from forewarn.settings import ForewarnSettings

# Defaults are given as ``default=`` so that type checkers without pydantic's plugin see them too.


class FeaturesOptions(BaseModel):
    app_id: str = Field(default="forewarn-features",
                        description="faust app id = consumer group; replicas share it.")
    host: str = Field(default="127.0.0.1", description="Bind address of /healthz, /readyz, /metrics.")
    port: int = Field(default=8003, ge=1, le=65535)
    batch_max: int = Field(
        default=100, ge=1,
        description="Kafka messages per processing batch, at most (an envelope holds many readings).")
    batch_within_s: float = Field(
        default=0.01, gt=0,
        description="Longest wait for a batch to fill after the last one: a latency budget every reading may "
                    "spend. Under load, readings queue while a batch runs, so batches fill (batch_max) without "
                    "waiting.")
    emit_interval_ms: int = Field(
        default=0, ge=0,
        description="0: publish a vector for every reading; N: at most one per machine per N ms of event time.")
    online_flush_s: float = Field(
        default=1.0, ge=0,
        description="How often the newest vector of each machine goes to Redis (0: after every batch). The "
                    "online store lags the stream by up to this plus one second when it pauses.")
    online_writer_thread: bool = Field(
        default=True,
        description="Write the online store from a thread of its own, beside the batches (False: on the batch "
                    "path, which stalls one batch a second for the write).")
    snapshot_interval_s: float = Field(
        default=10.0, gt=0,
        description="How often machine state is snapshotted (bounds the replay after a crash).")
    session_timeout_s: float = Field(
        default=10.0, gt=0,
        description="How soon a dead worker's partitions move to the survivors (Kafka session timeout).")
    datadir: Path = Field(default=Path(".forewarn/faust"), description="faust's local data folder.")


class FeaturesSettings(ForewarnSettings):
    features: FeaturesOptions = FeaturesOptions()
