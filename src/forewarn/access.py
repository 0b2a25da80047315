"""Access control for every service's HTTP API: roles, principals, hashed keys, and the one FastAPI
dependency factory :meth:`AccessControl.require` that guards each route.

Roles are hierarchical where the work is: ``engineer`` ⊇ ``operator`` ⊇ ``viewer`` (whoever may change
the configuration may also acknowledge alerts, and whoever may acknowledge may read). ``plant`` stands
apart: a gateway that sends readings reads nothing and acknowledges nothing, and no person's key can
inject readings. A principal holds the union of what its roles imply.

A key is a high-entropy random token. Services keep only its SHA-256 (a hash of a 256-bit random token
cannot be reversed or guessed, so no salt or slow hash is needed, and the hashes are not secrets), and a
request's key is hashed and compared with every stored hash in constant time.

Health, readiness and metrics stay open on purpose: Kubernetes probes and Prometheus scrape them without
credentials, and they reveal nothing about machines, alerts or models (counters and "ready"/"not ready").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"


class Role(StrEnum):
    PLANT = "plant"
    """Sends readings (ingest)."""
    VIEWER = "viewer"
    """Reads: alerts, scores, the monitor's windows."""
    OPERATOR = "operator"
    """Acknowledges alerts and gives feedback; and whatever a viewer may."""
    ENGINEER = "engineer"
    """Changes configuration (policy, promotion, retraining); and whatever an operator may."""


# Each role and the roles it includes (itself too).
IMPLIED: dict[Role, frozenset[Role]] = {
    Role.PLANT: frozenset({Role.PLANT}),
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.ENGINEER: frozenset({Role.ENGINEER, Role.OPERATOR, Role.VIEWER}),
}

DEV_API_KEY = "forewarn-dev-key"
"""The development key holding every role (what a development service accepted before roles)."""
DEV_ROLE_KEYS: dict[Role, str] = {role: f"forewarn-dev-{role.value}" for role in Role}
"""One documented development key per role, e.g. ``forewarn-dev-viewer``. Never valid in production."""


def hash_key(key: str) -> str:
    """The hex SHA-256 a service stores for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits), prefixed so a leaked one is recognisable in logs and scanners."""
    return f"fw_{secrets.token_urlsafe(32)}"


def implied(roles: Iterable[Role]) -> frozenset[Role]:
    return frozenset().union(*(IMPLIED[role] for role in roles))


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as: a name for the audit trail and the roles it holds."""

    name: str
    roles: frozenset[Role]

    def may(self, role: Role) -> bool:
        return role in implied(self.roles)


@dataclass(frozen=True)
class KeyHolder:
    """A stored key: the principal it authenticates and the SHA-256 of the key."""

    principal: Principal
    digest: bytes


class AccessDenied(HTTPException):
    """401 (no or unknown key; with WWW-Authenticate) or 403 (a known key without the role)."""


# auto_error=False: a missing key is answered by AccessControl (401 with our message), not by FastAPI.
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                        description="An API key; which routes it opens depends on its roles.")
ApiKey = Annotated[str | None, Security(_api_key)]


class AccessControl:
    """The keys one service accepts, and the dependencies that check them."""

    def __init__(self, holders: Iterable[KeyHolder]) -> None:
        self.holders = tuple(holders)

    def authenticate(self, key: str | None) -> Principal | None:
        if not key:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        # Compare with every stored hash (no early exit): the time taken says nothing about near matches.
        found = None
        for holder in self.holders:
            if hmac.compare_digest(digest, holder.digest):
                found = holder.principal
        return found

    def require(self, role: Role) -> Callable[..., Principal]:
        """A FastAPI dependency: the request's principal, if its key holds ``role`` (or a role that
        implies it); else 401 or 403. The principal is also left on ``request.state.principal``."""

        def dependency(request: Request, key: ApiKey = None) -> Principal:
            principal = self.authenticate(key)
            if principal is None:
                raise AccessDenied(401, f"missing or unknown API key; send it in the {API_KEY_HEADER} header",
                                   headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'})
            if not principal.may(role):
                raise AccessDenied(403, f"the key of {principal.name!r} ({', '.join(sorted(principal.roles))}) "
                                        f"lacks the role {role.value!r} this route needs")
            request.state.principal = principal
            return principal

        dependency.__name__ = f"require_{role.value}"
        return dependency
