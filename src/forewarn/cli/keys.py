"""``forewarn keys new | hash``: make an API key for a principal and print the entry services store.

The key is printed once and never stored; services keep only its SHA-256 (forewarn.api_keys). The entry
goes into the ``FOREWARN_<SERVICE>__API_KEYS`` JSON list of every service the principal uses.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from forewarn.errors import UserError

ROLE_NAMES = ("plant", "viewer", "operator", "engineer")  # forewarn.access.Role, kept import-free for --help
# The services whose routes each role opens (viewer routes are on every service but ingest).
_SERVICES_BY_ROLE = {
    "plant": ("ingest",),
    "viewer": ("alerter", "scorer", "monitor"),
    "operator": ("alerter", "scorer", "monitor"),
    "engineer": ("alerter", "scorer", "monitor"),
}

RoleOpt = Annotated[list[str], typer.Option("--role", help=f"A role ({', '.join(ROLE_NAMES)}); repeatable.")]
NameOpt = Annotated[str, typer.Option("--name", help="Who holds the key, as the audit trail will name them "
                                                     "(e.g. line-3-gateway, ana@plant-north).")]


def _entry(key: str, roles: list[str], name: str) -> dict[str, object]:
    from forewarn.access import Role, hash_key

    unknown = sorted(set(roles) - set(ROLE_NAMES))
    if unknown or not roles:
        raise UserError(f"unknown role(s) {', '.join(unknown) or '(none given)'}; give --role one or more of "
                        f"{', '.join(ROLE_NAMES)}")
    if not name.strip():
        raise UserError("--name must name the key's holder (it is how the audit trail names them)")
    ordered = [role.value for role in Role if role.value in roles]
    return {"name": name.strip(), "roles": ordered, "key_sha256": hash_key(key)}


def _print_entry(entry: dict[str, object], roles: list[str]) -> None:
    services = sorted({service for role in roles for service in _SERVICES_BY_ROLE[role]})
    typer.echo("entry (add it to the JSON list of each variable below; the hash is not a secret):")
    typer.echo(f"  {json.dumps(entry)}")
    for service in services:
        typer.echo(f"  FOREWARN_{service.upper()}__API_KEYS")


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys with roles: make one, or hash an existing one.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("new")
    def new(roles: RoleOpt, name: NameOpt) -> None:
        """Make a random key, print it once, and print the entry (with its SHA-256) services store."""
        from forewarn.access import new_key

        key = new_key()
        entry = _entry(key, roles, name)
        typer.echo("key (shown once: hand it to its holder or your secret store; it is not kept anywhere):")
        typer.echo(f"  {key}")
        _print_entry(entry, roles)

    @keys.command("hash")
    def hash_(roles: RoleOpt, name: NameOpt) -> None:
        """Read a key from stdin (so it stays out of shell history) and print its entry."""
        key = sys.stdin.readline().strip()
        if len(key) < 24:
            raise UserError("give the key on stdin (at least 24 characters of a random token), e.g. "
                            "forewarn keys hash --role plant --name line-3 < key.txt")
        _print_entry(_entry(key, roles, name), roles)
