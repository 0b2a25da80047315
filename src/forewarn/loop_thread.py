"""The stream loop of a service with an HTTP edge runs in a thread; a crash there must end the process."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable


def start_guarded(target: Callable[[], None], stop: threading.Event, name: str) -> threading.Thread:
    """Run ``target`` in a daemon thread; if it raises, log it, set ``stop`` and SIGTERM this process, so
    the API goes down with it and the supervisor restarts the service instead of keeping a zombie API."""

    def runner() -> None:
        try:
            target()
        except Exception:
            logging.getLogger(f"forewarn.{name}").exception("%s crashed; stopping the service", name)
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=runner, name=name, daemon=True)
    thread.start()
    return thread
