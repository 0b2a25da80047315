"""Retraining with guardrails: when to retrain (:mod:`trigger`, pure), never two runs at once
(:mod:`lock`, Redis), the run itself (:mod:`chain`: training set, training, the promotion gates), what
each run records (:mod:`record`), and how the monitor starts one (:mod:`runner`: a subprocess locally,
a Job in Kubernetes). Nothing here imports a heavy library at import time.
"""
