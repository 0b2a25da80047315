"""A bounded schemathesis run against the alerter's, the scorer's and the monitor's own OpenAPI, in-process
(ASGI) over in-memory fakes, with a key that holds every role: no generated request, valid or not, gets a
5xx. Ingest has its own, stricter run (test_ingest_openapi.py); the features service has no API (its
routes are checked in test_access_routes.py)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from tests.unit.access_apps import alerter_app, monitor_app, scorer_app

from forewarn.access import API_KEY_HEADER, DEV_API_KEY

KEY = {API_KEY_HEADER: DEV_API_KEY}
BOUNDED = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))

alerter = schemathesis.openapi.from_asgi("/openapi.json", alerter_app()[0])
scorer = schemathesis.openapi.from_asgi("/openapi.json", scorer_app())
monitor = schemathesis.openapi.from_asgi("/openapi.json", monitor_app())


def _no_server_error(case: Any) -> None:
    case.call_and_validate(headers=KEY, checks=[checks.not_a_server_error])


@alerter.parametrize()
@BOUNDED
def test_alerter_api_never_answers_5xx(case: Any) -> None:
    _no_server_error(case)


@scorer.parametrize()
@BOUNDED
def test_scorer_api_never_answers_5xx(case: Any) -> None:
    _no_server_error(case)  # a champion is loaded, so /readyz says 200 and /v1/score reaches the model


@monitor.parametrize()
@BOUNDED
def test_monitor_api_never_answers_5xx(case: Any) -> None:
    _no_server_error(case)
