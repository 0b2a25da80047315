"""Benchmarks: each measures the real path against a baseline run in the same process and writes JSON."""
