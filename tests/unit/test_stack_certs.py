"""The local CA signs server certificates that a TLS client verifying against ca.pem accepts."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

from forewarn.stack.certs import ensure_ca, issue


def test_a_server_certificate_verifies_against_the_ca_and_keys_are_private(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "tls")
    server = issue(ca, "redis")
    assert stat.S_IMODE(server.key.stat().st_mode) == 0o600 and stat.S_IMODE(ca.key.stat().st_mode) == 0o600
    assert server.bundle.read_text().index("PRIVATE KEY") < server.bundle.read_text().index("CERTIFICATE")

    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(server.cert, server.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        conn, _ = listener.accept()
        with serving.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(ca.cert))
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.recv(2) == b"ok"
    thread.join(5)
    listener.close()


def test_certificates_are_reused_until_rotated_and_a_new_ca_drops_the_old_leaves(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    first = issue(ca, "kafka").cert.read_bytes()
    assert ensure_ca(tmp_path).cert.read_bytes() == ca.cert.read_bytes()
    assert issue(ca, "kafka").cert.read_bytes() == first
    old_ca = ca.cert.read_bytes()
    rotated = ensure_ca(tmp_path, rotate=True)
    assert rotated.cert.read_bytes() != old_ca and not rotated.server("kafka").bundle.exists()
    assert issue(rotated, "kafka").cert.read_bytes() != first
