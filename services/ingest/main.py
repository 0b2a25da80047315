"""``forewarn run ingest``: the one place where the ingest service is wired to real adapters."""

from __future__ import annotations

from pydantic import ValidationError

from forewarn.errors import UserError


def run() -> None:
    import uvicorn

    from forewarn.observability import configure_json_logging

    from .app import create_app
    from .publisher import KafkaPublisher
    from .settings import IngestSettings

    try:
        settings = IngestSettings()
    except ValidationError as exc:
        problems = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise UserError(f"ingest settings are invalid: {problems}") from None
    configure_json_logging(settings.log_level)
    publisher = KafkaPublisher(settings.kafka, delivery_timeout_s=settings.ingest.delivery_timeout_s)
    app = create_app(settings, publisher)
    uvicorn.run(
        app,
        host=settings.ingest.host,
        port=settings.ingest.port,
        workers=1,
        access_log=settings.ingest.access_log,
        log_config=None,  # keep the JSON logging configured above
        # Uvicorn's default keep-alive (5 s) drops idle senders between batches; reconnects cost more.
        timeout_keep_alive=30,
        timeout_graceful_shutdown=max(5, int(settings.ingest.delivery_timeout_s) + 5),
        **settings.tls.uvicorn_options(),  # HTTPS when the shared TLS settings name a certificate
    )
