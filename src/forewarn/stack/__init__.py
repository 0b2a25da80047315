"""Local stack: Kafka, Redis and MLflow as background processes."""
