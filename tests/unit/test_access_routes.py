"""Walks every route of every service and checks who may call it: protected routes answer 401 (with
WWW-Authenticate) without a key or with an unknown one, 403 to a key without the role, and let through
exactly the roles that imply the one they need; mutating routes need more than viewer; only the
operations routes are open. The routes are listed from the apps themselves, so a new route without an
entry in REQUIRED fails here until someone decides who may call it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.access_apps import RecordedAudit, alerter_app, fastapi_apps, features_routes

from forewarn.access import API_KEY_HEADER, DEV_API_KEY, DEV_ROLE_KEYS, Principal, Role

# Who may call what: the least role each protected route needs (roles that imply it pass too).
REQUIRED: dict[tuple[str, str, str], Role] = {
    ("ingest", "POST", "/v1/readings"): Role.PLANT,
    ("alerter", "GET", "/v1/alerts"): Role.VIEWER,
    ("alerter", "GET", "/v1/alerts/{alert_id}"): Role.VIEWER,
    ("alerter", "POST", "/v1/alerts/{alert_id}/feedback"): Role.OPERATOR,
    ("scorer", "GET", "/v1/machines/{machine_id}/risk"): Role.VIEWER,
    ("scorer", "POST", "/v1/score"): Role.VIEWER,
    ("monitor", "GET", "/v1/summary"): Role.VIEWER,
    ("monitor", "GET", "/v1/windows"): Role.VIEWER,
    ("monitor", "GET", "/v1/reference"): Role.VIEWER,
}
# POST only to carry a body: scoring changes nothing (the issue: the read-only scoring API needs viewer).
READ_ONLY_POSTS = {("scorer", "POST", "/v1/score")}
# Open on purpose: probes and Prometheus scrape without credentials, and these say only "ok"/"not ready"
# and counters. The API docs describe routes, not data.
OPEN_OPERATIONS = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
OPEN_DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# faust's fixed index page ({"status": "OK"}), which it mounts at "/" and cannot be turned off.
FEATURES_OPEN = OPEN_OPERATIONS | {("GET", "/")}


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return fastapi_apps()


def _served(routes: Iterable[Any]) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, those of included routers too."""
    for route in routes:
        # Recent FastAPI keeps an included router as one entry whose candidates are its routes, prefixed.
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from _served(candidates() if callable(candidates) else candidates)
        else:
            yield getattr(route, "path", ""), set(getattr(route, "methods", None) or {"GET"})


def _routes(apps: dict[str, FastAPI]) -> Iterator[tuple[str, str, str, bool]]:
    """(service, method, path, in the OpenAPI schema) of every route every app serves."""
    for service, app in apps.items():
        documented = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
        for path, methods in _served(app.routes):
            for method in sorted(methods - {"HEAD"}):
                yield service, method, path, (method, path) in documented


def test_every_route_is_either_open_operations_docs_or_has_a_required_role(apps: dict[str, FastAPI]) -> None:
    found = list(_routes(apps))
    unknown = [(s, m, p) for s, m, p, _ in found
               if (m, p) not in OPEN_OPERATIONS and p not in OPEN_DOCS and (s, m, p) not in REQUIRED]
    assert unknown == [], f"routes nobody decided the role of (add them to REQUIRED): {unknown}"
    assert {(s, m, p) for s, m, p, _ in found} >= set(REQUIRED), "REQUIRED lists routes that no longer exist"
    undocumented = [(s, m, p) for s, m, p, doc in found if (s, m, p) in REQUIRED and not doc]
    assert undocumented == []  # every protected route is in the OpenAPI the schemathesis run walks
    assert len({(s, m, p) for s, m, p, _ in found if (m, p) in OPEN_OPERATIONS}) == 3 * len(apps)


def _call(client: TestClient, method: str, path: str, key: str | None) -> int:
    headers = {API_KEY_HEADER: key} if key is not None else {}
    return client.request(method, path.replace("{alert_id}", "nope").replace("{machine_id}", "zzz"),
                          headers=headers).status_code


def _passes(role: Role, required: Role) -> bool:
    return Principal("probe", frozenset({role})).may(required)


@pytest.mark.parametrize(("service", "method", "path"), sorted(REQUIRED))
def test_protected_routes_answer_401_403_and_let_through_exactly_their_roles(
        apps: dict[str, FastAPI], service: str, method: str, path: str) -> None:
    client = TestClient(apps[service])
    required = REQUIRED[(service, method, path)]
    for key in (None, "", "not-a-key", DEV_API_KEY + "x"):
        headers = {API_KEY_HEADER: key} if key is not None else {}
        answer = client.request(method, path.replace("{alert_id}", "nope").replace("{machine_id}", "zzz"),
                                headers=headers)
        assert answer.status_code == 401, (key, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("ApiKey"), answer.headers
        assert API_KEY_HEADER in answer.text
    through = {role for role, key in DEV_ROLE_KEYS.items() if _call(client, method, path, key) not in (401, 403)}
    refused = {role for role, key in DEV_ROLE_KEYS.items() if _call(client, method, path, key) == 403}
    assert through == {role for role in Role if _passes(role, required)}
    assert refused == set(Role) - through and refused, "every protected route refuses some role with 403"
    assert _call(client, method, path, DEV_API_KEY) not in (401, 403)  # the all-roles development key
    if method in MUTATING and (service, method, path) not in READ_ONLY_POSTS:
        assert Role.VIEWER in refused, "a route that changes something needs more than viewer"


def test_mutating_routes_need_more_than_viewer() -> None:
    mutating = {route: role for route, role in REQUIRED.items()
                if route[1] in MUTATING and route not in READ_ONLY_POSTS}
    assert mutating and all(role != Role.VIEWER for role in mutating.values())
    assert all(method == "POST" and role == Role.VIEWER for (_s, method, _p), role in REQUIRED.items()
               if (_s, method, _p) in READ_ONLY_POSTS)


def test_open_routes_answer_without_a_key(apps: dict[str, FastAPI]) -> None:
    for service, app in apps.items():
        client = TestClient(app)
        for method, path in OPEN_OPERATIONS | {("GET", "/openapi.json")}:
            assert client.request(method, path).status_code not in (401, 403), (service, path)


def test_the_features_service_serves_only_open_operations_pages() -> None:
    # faust mounts /router and /table views (partition owners, table keys) unless turned off: they are.
    assert features_routes() == FEATURES_OPEN


def test_feedback_is_attributed_to_the_authenticated_principal() -> None:
    audit = RecordedAudit()
    app, alert_id = alerter_app(audit)
    client = TestClient(app)
    answer = client.post(f"/v1/alerts/{alert_id}/feedback", json={"kind": "acknowledged", "operator": "ana"},
                         headers={API_KEY_HEADER: DEV_ROLE_KEYS[Role.OPERATOR]})
    assert answer.status_code == 200, answer.text
    engineer = client.post(f"/v1/alerts/{alert_id}/feedback", json={"kind": "false_alarm"},
                           headers={API_KEY_HEADER: DEV_ROLE_KEYS[Role.ENGINEER]})
    assert engineer.status_code == 200, engineer.text
    assert audit.actions == [(alert_id, "acknowledged", "dev-operator"), (alert_id, "false_alarm", "dev-engineer")]
    assert answer.json()["label"]["operator"] == "ana"  # the claimed operator stays on the label
