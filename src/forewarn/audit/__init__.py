"""The audit trail: who did what to which data set, model or alert, and when, hash-chained.

``record`` is the contract (one place), ``chain`` the pure append/verify rules, ``trail`` the local
mirror (a locked JSON-lines file) and the sender to the Kafka ``audit`` topic, ``actions`` the one call per
audited action, ``trace`` the walk alert -> model version -> training run -> data set -> operator actions.
Nothing here imports a heavy library at import time.
"""
