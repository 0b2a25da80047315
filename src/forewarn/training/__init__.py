"""Training, evaluation and model registry code (batch; never imported by the streaming services)."""
