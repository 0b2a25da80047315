"""The scorer's HTTP edge: on-demand scoring from the online store, batch scoring, operations.

Scoring reads and changes nothing, so both scoring routes (the batch one is a POST only to carry its
body) need the viewer role (forewarn.access).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException
from pydantic import Field

from forewarn.access import AccessControl, Role
from forewarn.observability import ops_router
from forewarn.online_store import FeatureStore
from forewarn.schemas import FeatureVector, RiskScore
from forewarn.services.scorer.model_watch import ModelHolder
from forewarn.services.scorer.scoring import score_rows

MAX_BATCH = 10_000


class VectorToScore(FeatureVector):
    """A feature vector sent to ``POST /v1/score``: its event time must fit the int64 the scoring path
    packs it into (the stream's vectors come from the features service, which never sends more)."""

    ts: int = Field(ge=0, lt=2**63, description="Event time (epoch ms) of the reading that produced this vector.")


def create_app(holder: ModelHolder, store: FeatureStore, access: AccessControl, top_k: int = 5,
               lifespan: Any = None) -> FastAPI:
    app = FastAPI(title="Forewarn scorer", version="1", lifespan=lifespan)
    viewer = [Depends(access.require(Role.VIEWER))]

    def readiness() -> tuple[bool, str]:
        bundle = holder.current
        if bundle is None:
            return False, holder.not_ready_reason
        return True, f"serving {bundle.name} version {bundle.version}"

    app.include_router(ops_router(readiness))

    def bundle_or_503():  # type: ignore[no-untyped-def]
        bundle = holder.current
        if bundle is None:
            raise HTTPException(503, detail=holder.not_ready_reason, headers={"Retry-After": "10"})
        return bundle

    @app.get("/v1/machines/{machine_id}/risk", response_model=RiskScore, dependencies=viewer)
    def machine_risk(machine_id: str) -> dict[str, Any]:
        """Score the machine's latest features from the online store, with the top contributing sensors."""
        bundle = bundle_or_503()
        vector = store.read(machine_id)
        if vector is None:
            raise HTTPException(404, detail=f"no features stored for machine {machine_id!r} yet; "
                                            "check the machine id, or whether its readings reach ingest")
        return score_rows(bundle, [vector.model_dump()], explain_above=0.0, top_k=top_k)[0]

    @app.post("/v1/score", response_model=list[RiskScore], dependencies=viewer)
    def score(vectors: Annotated[list[VectorToScore], Body(max_length=MAX_BATCH)]) -> list[dict[str, Any]]:
        """Score a batch of feature vectors (at most 10,000)."""
        bundle = bundle_or_503()
        return score_rows(bundle, [v.model_dump() for v in vectors], explain_above=0.0, top_k=top_k)

    return app
