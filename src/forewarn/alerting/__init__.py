"""The alerter's pure domain: no I/O, no clock, no clients.

* :mod:`.policy`: the per-dedup-key state machine (scores, time, feedback) and its configuration;
* :mod:`.events`: the alert and feedback events built from its decisions (their models live in
  :mod:`forewarn.schemas`), the outbox records and the feedback request;
* :mod:`.changes`: what one decision writes, as the alert-state repository reads and writes it;
* :mod:`.triage`: which consumed scores can change anything, decided before validation;
* :mod:`.replay`: the state an uninterrupted run would hold, rebuilt from recorded inputs;
* :mod:`.model_health`: the monitor's model-health judgements as policy inputs (the reserved machine type
  ``model_health``), so drift and decay alert through the same state machine.

The service that runs it over Redis, Kafka and notifiers is ``forewarn.services.alerter``.
"""
