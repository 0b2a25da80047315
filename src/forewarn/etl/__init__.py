"""Spark jobs: the data lake stream and the training-set build."""
