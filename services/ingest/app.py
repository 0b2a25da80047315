"""The HTTP edge of ingest: authenticate, check the body, hand the batch to :class:`IngestService`, and
answer with what happened to every reading. ``create_app`` builds it from settings and a publisher."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Request, Response

from forewarn.access import DEV_ROLE_KEYS, AccessDenied, Role
from forewarn.assets import load_asset_config
from forewarn.observability import ops_router

from . import body as bodies
from .metrics import ingest_metrics
from .models import IngestAccepted, IngestUnavailable, Problem, ReadingIn
from .publisher import Publisher
from .service import IngestOutcome, IngestService
from .settings import DEV_API_KEY, IngestSettings
from .validation import ReadingValidator

log = logging.getLogger("forewarn.ingest")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Module level: FastAPI resolves these annotations by name, which fails for locals of create_app.
RequestIdHeader = Annotated[
    str | None, Header(description="Your id for this request (1-128 of A-Z a-z 0-9 . _ : -), echoed back.")
]


def create_app(settings: IngestSettings, publisher: Publisher) -> FastAPI:
    config = load_asset_config(settings.asset_config)
    service = IngestService(ReadingValidator(config), publisher)
    metrics = ingest_metrics()
    access = settings.access()
    dev_keys = settings.uses_development_keys()
    opts = settings.ingest

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        log.info(
            "ingest ready",
            extra={"fields": {"asset_config": config.name, "environment": settings.environment,
                              "topic_prefix": settings.kafka.topic_prefix,
                              "api_keys": "development default" if dev_keys else len(access.holders)}},
        )
        if dev_keys:
            log.warning(f"accepting the development API keys ({DEV_API_KEY!r}, "
                        f"{DEV_ROLE_KEYS[Role.PLANT]!r}); set FOREWARN_INGEST__API_KEYS")
        try:
            yield
        finally:
            # SIGTERM: uvicorn stops taking requests, then this flushes what Kafka has not confirmed yet.
            await asyncio.to_thread(publisher.close)

    app = FastAPI(
        title="Forewarn ingest",
        version="1",
        description="Batch ingest of sensor readings into Kafka (sensor.readings; invalid ones to "
        "sensor.readings.dlq with a reason). Authenticate with the X-API-Key header, a key with the plant role"
        + (f" (development defaults: {DEV_ROLE_KEYS[Role.PLANT]}, {DEV_API_KEY})." if dev_keys else "."),
        lifespan=lifespan,
    )
    app.include_router(ops_router(publisher.readiness))

    @app.exception_handler(AccessDenied)
    async def access_denied(request: Request, exc: AccessDenied) -> Response:
        # Ingest answers in its own problem format, with the request id, like every other refusal.
        request_id = _request_id(request.headers.get("x-request-id"))
        metrics.requests.labels(str(exc.status_code)).inc()
        error = "unauthorized" if exc.status_code == 401 else "forbidden"
        response = _problem(exc.status_code, request_id, error, str(exc.detail))
        response.headers.update({**(exc.headers or {}), "X-Request-ID": request_id})
        return response

    @app.post(
        "/v1/readings",
        summary="Ingest a batch of readings",
        response_model=IngestAccepted,
        responses={
            400: {"model": Problem, "description": "Malformed body: nothing was stored."},
            401: {"model": Problem, "description": "Missing or unknown X-API-Key."},
            403: {"model": Problem, "description": "The key lacks the plant role."},
            413: {"model": Problem, "description": "Body or batch too large: split it."},
            415: {"model": Problem, "description": "Content-Type is not application/json or x-ndjson."},
            503: {
                "model": IngestUnavailable,
                "description": "Kafka did not confirm every reading; resend retry_indexes after Retry-After.",
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
            },
        },
        openapi_extra={"requestBody": _request_body_spec(opts.max_readings_per_request)},
        dependencies=[Depends(access.require(Role.PLANT))],
    )
    async def post_readings(
        request: Request,
        x_request_id: RequestIdHeader = None,
    ) -> Response:
        started = time.perf_counter()
        request_id = _request_id(x_request_id)
        try:
            response = await _handle(request, request_id)
        finally:
            metrics.latency.observe(time.perf_counter() - started)
        metrics.requests.labels(str(response.status_code)).inc()
        response.headers["X-Request-ID"] = request_id
        return response

    async def _handle(request: Request, request_id: str) -> Response:
        try:
            kind = bodies.media_type(request.headers.get("content-type"))
            payload = await _read_body(request, opts.max_body_bytes)
            items = bodies.parse_batch(payload, kind, opts.max_readings_per_request)
        except bodies.BodyError as exc:
            return _problem(exc.status, request_id, exc.error, exc.message)
        outcome = await service.ingest(items, request_id)
        _count(outcome)
        if outcome.complete:
            return _json(200, {"request_id": request_id, "accepted": len(outcome.accepted),
                               "rejected": _rejected(outcome)})
        log.warning(
            "Kafka did not confirm a batch",
            extra={"fields": {"request_id": request_id, "accepted": len(outcome.accepted),
                              "unconfirmed": len(outcome.retry), "error": outcome.error}},
        )
        return _json(
            503,
            {
                "request_id": request_id,
                "error": "kafka_unavailable",
                "message": f"Kafka did not confirm every reading within {opts.delivery_timeout_s:g}s "
                f"({outcome.error}). Readings in accepted_indexes are stored: do not resend them. Resend "
                f"those in retry_indexes after {opts.retry_after_s}s; fix those in rejected.",
                "accepted": len(outcome.accepted),
                "accepted_indexes": sorted(outcome.accepted),
                "retry_indexes": sorted(outcome.retry),
                "dead_letters_unconfirmed": outcome.dead_letters_unconfirmed,
                "rejected": _rejected(outcome),
            },
            headers={"Retry-After": str(opts.retry_after_s)},
        )

    def _count(outcome: IngestOutcome) -> None:
        if outcome.accepted:
            metrics.accepted.inc(len(outcome.accepted))
        for _index, rejection in outcome.rejected:
            metrics.rejected.labels(rejection.reason.value).inc()

    return app


def _request_id(given: str | None) -> str:
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> bodies.BodyError:
    return bodies.BodyError(413, "body_too_large", f"the body is larger than {limit} bytes; split the batch")


def _rejected(outcome: IngestOutcome) -> list[dict[str, Any]]:
    return [{"index": i, "reason": r.reason.value, "message": r.message} for i, r in outcome.rejected]


def _json(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def _problem(status: int, request_id: str, error: str, message: str) -> Response:
    return _json(status, {"request_id": request_id, "error": error, "message": message})


def _request_body_spec(max_readings: int) -> dict[str, Any]:
    """OpenAPI of the body, which the handler reads itself (NDJSON is not something FastAPI parses)."""
    batch = {
        "type": "array",
        "items": ReadingIn.model_json_schema(),
        "minItems": 1,
        "maxItems": max_readings,
    }
    return {
        "required": True,
        "description": "A batch of readings. Each is validated on its own against the asset config: "
        "invalid ones are listed in the answer and go to the DLQ, the others are stored.",
        "content": {
            bodies.JSON: {"schema": batch},
            bodies.NDJSON: {
                "schema": batch,
                "description": "One reading (a JSON object) per line; indexes are line numbers.",
            },
        },
    }

