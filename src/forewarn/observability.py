"""What every service shows the outside: JSON logs and the /healthz, /readyz, /metrics endpoints.

No `from __future__ import annotations` here: FastAPI must resolve the route annotations at runtime.
"""


import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from fastapi import APIRouter
    from prometheus_client import CollectorRegistry

ReadinessCheck = Callable[[], tuple[bool, str]]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_json_logging(level: str = "INFO") -> None:
    """Called once by a service's run(), never at import time."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.Formatter.converter = __import__("time").gmtime


def ops_router(readiness: ReadinessCheck, registry: "CollectorRegistry | None" = None) -> "APIRouter":
    """FastAPI router with /healthz (process alive), /readyz (dependencies usable) and /metrics (from
    ``registry``, by default the process-wide one the service's wiring registered its metrics in)."""
    from fastapi import APIRouter, Response
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    served = REGISTRY if registry is None else registry

    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz(response: Response) -> dict[str, object]:
        ready, reason = readiness()
        response.status_code = 200 if ready else 503
        return {"ready": ready, "reason": reason}

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(served), media_type=CONTENT_TYPE_LATEST)

    return router
