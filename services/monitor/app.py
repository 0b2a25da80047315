"""The monitor's HTTP edge: the latest window's judgement, the window history, the reference, operations.

The /v1 routes need the viewer role (forewarn.access); the operations routes stay open.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query

from forewarn.access import AccessControl, Role
from forewarn.observability import ops_router
from forewarn.services.monitor.service import MonitorService


def create_app(service: MonitorService, access: AccessControl, lifespan: Any = None, extra: Any = None) -> FastAPI:
    app = FastAPI(title="Forewarn monitor", version="1", lifespan=lifespan)

    def readiness() -> tuple[bool, str]:
        if service.monitor is None:
            return False, service.not_ready_reason
        state = "with its reference" if service.reference is not None else "without a reference (not judging)"
        return True, f"monitoring {service.model_name} version {service.version} {state}"

    app.include_router(ops_router(readiness))
    router = APIRouter(prefix="/v1", dependencies=[Depends(access.require(Role.VIEWER))])

    @router.get("/summary")
    def summary() -> dict[str, Any]:
        """The latest closed window: drift per machine type (share, drifted sensors, per-feature scores), the
        score distribution, live figures from labels, and every condition judged."""
        latest = service.latest()
        if latest is None:
            raise HTTPException(404, detail="no window closed yet; the first closes "
                                            f"{service.options.window_s:.0f} s after the monitor starts")
        return {**latest, **({"labels": extra()} if extra is not None else {})}

    @router.get("/windows")
    def windows(limit: int = Query(20, ge=1, le=1000)) -> list[dict[str, Any]]:
        """The most recent window summaries, newest first."""
        with service.lock:
            return list(reversed(list(service.history)))[:limit]

    @router.get("/reference")
    def reference() -> dict[str, Any]:
        """What the champion is compared with: machine types, monitored features and thresholds, holdout figures."""
        ref = service.reference
        if ref is None:
            raise HTTPException(404, detail=f"champion {service.model_name} version {service.version} has no "
                                            "monitoring reference; retrain and promote it to get one")
        return {"model_version": service.version, "horizon": ref.horizon, "holdout": ref.holdout,
                "thresholds": ref.thresholds, "score_threshold": ref.score_threshold,
                "rows": {t: len(f) for t, f in ref.features.items()}, "data_hash": ref.data_hash}

    app.include_router(router)
    return app
