"""Where the trail is written and who the actor is: ``FOREWARN_AUDIT__*`` and ``FOREWARN_ACTOR``."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from pydantic import BaseModel, Field

from forewarn.stack.config import StackSettings


class AuditOptions(BaseModel):
    file: Path | None = Field(None, description="The local mirror (default: <state dir>/audit/trail.jsonl).")
    kafka: bool = Field(True, description="Also send every record to the Kafka audit topic.")
    send_timeout_s: float = Field(5.0, gt=0, description="How long one send to Kafka may take.")
    trail_id: str | None = Field(None, description="Name of this writer's chain (default: host and file).")


class AuditSettings(StackSettings):
    actor: str | None = Field(None, description="Who runs the commands here (FOREWARN_ACTOR); default: the OS "
                                                "user.")
    audit: AuditOptions = AuditOptions()

    @property
    def trail_file(self) -> Path:
        return (self.audit.file or self.state_dir / "audit" / "trail.jsonl").expanduser().resolve()


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"


def resolve_actor(explicit: str | None = None, configured: str | None = None) -> str:
    """The named actor (an operator, a service for automatic actions), else FOREWARN_ACTOR, else the OS user."""
    for candidate in (explicit, configured):
        if candidate and candidate.strip():
            return candidate.strip()
    return os_user()
