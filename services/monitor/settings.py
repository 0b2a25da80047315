"""Settings of the monitor: FOREWARN_MONITOR__* plus the shared Kafka/Redis/MLflow settings.

API keys: ``FOREWARN_MONITOR__API_KEYS`` (forewarn.api_keys); the monitor's API needs the viewer role.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from forewarn.api_keys import ApiKeyOptions, ApiKeySettings
from forewarn.retraining.settings import RetrainOptions


class MonitorOptions(ApiKeyOptions):
    host: str = Field("127.0.0.1", description="HTTP bind address (0.0.0.0 in a container).")
    port: int = Field(8004, ge=1, le=65535)
    group_id: str = Field("forewarn-monitor", description="Consumer group of the label stream (alerts, "
                                                          "feedback, ground truth).")
    window_s: float = Field(60.0, gt=0, description="Wall seconds per drift window.")
    sample_interval_s: float = Field(
        1.0, gt=0, description="How often the newest block of each partition of features.vectors and risk.scores "
                               "is sampled. The cost is per sample, not per reading, so it stays small at any rate.")
    blocks_per_sample: int = Field(
        4, ge=1, le=100, description="Newest blocks read per partition and sample (fewer when fewer arrived). "
                                     "More lets a small plant's window reach min_rows of every type; the cost "
                                     "grows with it, not with the reading rate.")
    rows_per_block: int = Field(64, ge=1, description="Rows taken at random from each sampled block.")
    min_rows: int = Field(200, ge=10, description="Sampled vectors of a machine type before its drift is judged.")
    max_rows: int = Field(2000, ge=100, description="Rows kept per machine type and window (a uniform reservoir).")
    min_scores: int = Field(200, ge=10, description="Sampled scores before the score distribution is judged.")
    reference_poll_s: float = Field(10.0, gt=0, description="How often the champion alias is checked; a new "
                                                            "champion resets the reference and the windows.")
    max_reports: int = Field(20, ge=0, description="Evidently HTML reports kept in MLflow per champion version "
                                                   "(older report runs are deleted); 0: none.")
    report_min_interval_s: float = Field(
        600.0, ge=0, description="Wall seconds between two reports: a drift that starts or clears sooner is "
                                 "reported at the first window after the interval (each report costs seconds "
                                 "of CPU, and a flapping condition must not flood MLflow).")
    report_every: int = Field(30, ge=0, description="Also log a report every N windows while nothing changes "
                                                    "(a report is always logged when a drift starts or clears).")
    history: int = Field(100, ge=1, description="Window summaries kept for the API.")
    retrain: bool = Field(False, description="Start a retraining when the trigger policy says so "
                                             "(FOREWARN_RETRAIN__* options).")


class MonitorSettings(ApiKeySettings):
    api_key_section: ClassVar[str] = "monitor"
    monitor: MonitorOptions = MonitorOptions()
    retrain: RetrainOptions = RetrainOptions()
