"""Settings of the scorer: FOREWARN_SCORER__* plus the shared Kafka/Redis/MLflow settings.

API keys: ``FOREWARN_SCORER__API_KEYS`` (forewarn.api_keys); the scoring API needs the viewer role.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from forewarn.api_keys import ApiKeyOptions, ApiKeySettings


class ScorerOptions(ApiKeyOptions):
    host: str = Field("127.0.0.1", description="HTTP bind address (0.0.0.0 in a container).")
    port: int = Field(8001, ge=1, le=65535)
    group_id: str = Field("forewarn-scorer", description="Consumer group; add members to scale out.")
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="Consumer session timeout: how soon a crashed member's partitions move on "
                                     "(librdkafka's default, 45 s, stalls scoring that long after a kill -9)."
    )
    batch_size: int = Field(2000, ge=1, description="Feature vectors consumed and scored per batch.")
    poll_timeout_s: float = Field(
        0.05, gt=0, description="Longest wait for the first message when none is queued; a batch is what is "
                                "queued when it starts, so a message never waits for others to arrive.")
    model_poll_s: float = Field(5.0, gt=0, description="How often the champion alias is checked.")
    num_threads: int = Field(1, ge=1, description="LightGBM threads; batches amortise, so 1 is usually best.")
    compile_model: bool = Field(
        True, description="Compile the champion to native code (lleaves) at load time; falls back to "
                          "Booster.predict, with the reason logged, when that fails or deviates."
    )
    compile_cache_dir: Path | None = Field(
        None, description="Where compiled models are cached by model hash (default: "
                          "$XDG_CACHE_HOME/forewarn/compiled-models, else ~/.cache/forewarn/compiled-models)."
    )
    explain_above: float = Field(
        0.2, ge=0, le=1, description="Risk above which the top contributing features are computed."
    )
    top_k: int = Field(5, ge=1, le=50, description="Contributors reported per explained score.")
    explain_refresh_ms: int = Field(
        60_000, ge=0, description="A risky machine is re-explained at most this often (event time); 0: always."
    )


class ScorerSettings(ApiKeySettings):
    api_key_section: ClassVar[str] = "scorer"
    scorer: ScorerOptions = ScorerOptions()
