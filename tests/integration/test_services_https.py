"""The services' own APIs over HTTPS: a real service app under uvicorn, configured only by the shared TLS
settings the secure profile gives every service (``secure.client_env``), and its clients verifying it."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest


def _serve(app: Any, port: int, options: dict[str, str]) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off",
                                           **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server, thread


def test_ingest_serves_https_from_the_shared_tls_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forewarn.localrun import ServiceProcess
    from forewarn.services.ingest.app import create_app
    from forewarn.services.ingest.publisher import InMemoryPublisher
    from forewarn.services.ingest.settings import IngestSettings
    from forewarn.stack import secure
    from forewarn.stack.config import StackSettings
    from forewarn.stack.process import free_port

    stack = StackSettings(stack={"state_dir": tmp_path / "state", "profile": "secure"})
    env = secure.client_env(stack, "ingest")
    for name in ("FOREWARN_TLS__HTTP_CERT_FILE", "FOREWARN_TLS__HTTP_KEY_FILE", "FOREWARN_TLS__CA_FILE"):
        monkeypatch.setenv(name, env[name])
    settings = IngestSettings(environment="development")
    assert settings.tls.enabled and settings.tls.scheme == "https"
    assert Path(env["FOREWARN_TLS__HTTP_KEY_FILE"]).stat().st_mode & 0o077 == 0  # the key is private

    port = free_port()
    server, thread = _serve(create_app(settings, InMemoryPublisher()), port, settings.tls.uvicorn_options())
    try:
        url = f"https://127.0.0.1:{port}"
        verified = httpx.get(f"{url}/healthz", verify=settings.tls.client_context(), timeout=5)
        assert verified.status_code == 200
        assert httpx.get(f"https://localhost:{port}/healthz", verify=settings.tls.client_context(),
                         timeout=5).status_code == 200
        # Not signed by a CA the system trusts: a client without the local CA refuses the server.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(), timeout=5)
        # Plain HTTP gets no HTTP answer from a TLS port.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # The local runner's readiness check speaks HTTPS and verifies with the env's CA.
        process = ServiceProcess("ingest", env={**env}, port=port, log_path=tmp_path / "ingest.log")
        assert process.url == url
        assert process.ready()
    finally:
        server.should_exit = True
        thread.join(10)


def test_tls_settings_default_to_plain_http() -> None:
    from forewarn.services.ingest.settings import IngestSettings

    settings = IngestSettings(environment="development")
    assert not settings.tls.enabled and settings.tls.scheme == "http"
    assert settings.tls.uvicorn_options() == {} and settings.tls.server_context() is None
