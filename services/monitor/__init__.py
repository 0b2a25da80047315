"""The monitor: data drift and decay of the serving model, model-health events, the retraining trigger."""
