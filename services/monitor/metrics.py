"""The monitor's Prometheus metrics, built once by its wiring point (nothing is registered at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.windows = Counter("forewarn_monitor_windows_total", "Drift windows closed", registry=registry)
        self.sampled = Counter("forewarn_monitor_sampled_total", "Rows sampled", ["stream"], registry=registry)
        self.drift_share = Gauge("forewarn_drift_share", "Share of monitored features that drifted in the last "
                                 "judged window", ["machine_type"], registry=registry)
        self.feature_drift = Gauge("forewarn_feature_drift_score", "Evidently's normed Wasserstein distance of a "
                                   "monitored feature to the reference", ["machine_type", "feature"],
                                   registry=registry)
        self.feature_drift_threshold = Gauge("forewarn_feature_drift_threshold", "Drift threshold of a monitored "
                                             "feature", ["machine_type", "feature"], registry=registry)
        self.score_drift = Gauge("forewarn_score_drift", "Distance of the live score distribution to the "
                                 "reference's", registry=registry)
        self.condition = Gauge("forewarn_model_health_condition", "1 while a model-health condition holds",
                               ["condition", "scope"], registry=registry)
        self.live_precision = Gauge("forewarn_live_precision", "Alert precision from labels so far", registry=registry)
        self.live_recall = Gauge("forewarn_live_recall", "Failure recall (alerted within the horizon) from labels",
                                 registry=registry)
        self.live_calibration_error = Gauge("forewarn_live_calibration_error", "Expected calibration error of "
                                            "sampled scores with known outcome", registry=registry)
        self.predicted_precision = Gauge("forewarn_predicted_precision", "Precision the calibrated probabilities "
                                         "predict for alerts without an outcome yet", registry=registry)
        self.holdout_figure = Gauge("forewarn_model_holdout", "The champion's holdout figures (model card)",
                                    ["figure"], registry=registry)
        self.reference_present = Gauge("forewarn_model_reference_present", "1 when the champion has a monitoring "
                                       "reference", registry=registry)
        self.labels = Counter("forewarn_monitor_labels_total", "Label-stream events applied", ["kind"],
                              registry=registry)
        self.retrains = Counter("forewarn_monitor_retrain_triggers_total", "Retraining runs started", ["reason"],
                                registry=registry)
        self.events = Counter("forewarn_model_health_events_total", "Model-health events published",
                              ["condition", "active"], registry=registry)
