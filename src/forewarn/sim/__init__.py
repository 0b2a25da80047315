"""Plant simulator and dataset replay: the demo, the load tests and the model benchmarks are fed from here."""
