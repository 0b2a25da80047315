"""Settings of the scorer: FOREWARN_SCORER__* plus the shared Kafka/Redis/MLflow settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from forewarn.settings import ForewarnSettings


class ScorerOptions(BaseModel):
    host: str = Field("127.0.0.1", description="HTTP bind address (0.0.0.0 in a container).")
    port: int = Field(8001, ge=1, le=65535)
    group_id: str = Field("forewarn-scorer", description="Consumer group; add members to scale out.")
    batch_size: int = Field(2000, ge=1, description="Feature vectors consumed and scored per batch.")
    poll_timeout_s: float = Field(0.2, gt=0, description="Longest wait for a batch to fill.")
    model_poll_s: float = Field(5.0, gt=0, description="How often the champion alias is checked.")
    num_threads: int = Field(1, ge=1, description="LightGBM threads; batches amortise, so 1 is usually best.")
    explain_above: float = Field(
        0.2, ge=0, le=1, description="Risk above which the top contributing features are computed."
    )
    top_k: int = Field(5, ge=1, le=50, description="Contributors reported per explained score.")
    explain_refresh_ms: int = Field(
        60_000, ge=0, description="A risky machine is re-explained at most this often (event time); 0: always."
    )


class ScorerSettings(ForewarnSettings):
    scorer: ScorerOptions = ScorerOptions()
