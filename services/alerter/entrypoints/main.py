"""The alerter's process entrypoint: ``forewarn run alerter`` and the container run :func:`run`
(``forewarn run <service>`` looks up ``forewarn.services.<service>.main.run``). It reads the settings,
configures logging, wires everything through bootstrap.bootstrap, and runs the API thread and the stream
loop until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from forewarn.errors import UserError

from ..bootstrap import Alerter, bootstrap
from ..settings import AlerterSettings

log = logging.getLogger("forewarn.alerter")


def _start_api(alerter: Alerter) -> tuple[Any, threading.Thread]:
    import uvicorn

    options = alerter.settings.alerter
    server = uvicorn.Server(uvicorn.Config(
        alerter.app, host=options.host, port=options.port, log_config=None, access_log=options.access_log,
        lifespan="off", **alerter.settings.tls.uvicorn_options(),  # HTTPS when the TLS settings name a cert
    ))
    thread = threading.Thread(target=server.run, name="feedback-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise UserError(
                f"the feedback API could not listen on {options.host}:{options.port} (port in use?); "
                "choose another with FOREWARN_ALERTER__PORT"
            )
        time.sleep(0.05)
    return server, thread


def run() -> None:
    from pydantic import ValidationError

    from forewarn.observability import configure_json_logging

    try:
        settings = AlerterSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise UserError(f"invalid alerter settings: {problems}") from None
    configure_json_logging(settings.log_level)
    alerter = bootstrap(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stopping: finishing the batch in progress", extra={"fields": {"signal": signum}})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server, thread = _start_api(alerter)
    log.info("alerter started", extra={"fields": {"port": settings.alerter.port}})
    try:
        alerter.run_loop(stop)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        log.info("alerter stopped")
