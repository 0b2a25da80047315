"""The secure profile's local certificate authority: one CA per state folder, and a server certificate per
component it signs, for 127.0.0.1 and localhost only.

Everything is PEM, which every client here reads directly (librdkafka, the JVM's PEM key stores since
Kafka 2.7, redis-py, httpx, uvicorn), so no keytool step and no key-store password. Files are written once
and reused; private keys are mode 0600. ``forewarn stack certs --rotate`` (or :func:`issue` with
``rotate=True``) makes new ones: a new CA means every client must be given the new ``ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 825  # what browsers and most clients accept as a maximum, for a CA that is rotated anyway
LEAF_DAYS = 397


@dataclass(frozen=True)
class ServerCert:
    """A component's certificate: ``cert`` (leaf then CA), ``key`` (PKCS#8, unencrypted, 0600), and one file
    holding both (``bundle``, key first: Kafka's PEM key store wants them together)."""

    name: str
    cert: Path
    key: Path
    bundle: Path


@dataclass(frozen=True)
class LocalCA:
    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key(self) -> Path:
        return self.folder / "ca.key"

    def server(self, name: str) -> ServerCert:
        base = self.folder / name
        return ServerCert(name, base.with_suffix(".pem"), base.with_suffix(".key"), base.with_suffix(".bundle.pem"))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_ca(folder: Path, *, rotate: bool = False) -> LocalCA:
    """The CA in ``folder`` (``ca.pem``, ``ca.key``), made when missing or when ``rotate``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = LocalCA(folder)
    if ca.cert.is_file() and ca.key.is_file() and not rotate:
        return ca
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Forewarn local stack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Forewarn local CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(ca.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for stale in folder.glob("*.bundle.pem"):  # leaves of the old CA would no longer verify
        stale.unlink()
    return ca


def issue(ca: LocalCA, name: str, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
          rotate: bool = False) -> ServerCert:
    """A server certificate for ``name`` signed by ``ca`` (made when missing, or when ``rotate``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = ca.server(name)
    if out.bundle.is_file() and out.cert.is_file() and out.key.is_file() and not rotate:
        return out
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"forewarn {name}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.cert.read_bytes()
    _write_private(out.key, key_pem)
    out.cert.write_bytes(chain)
    _write_private(out.bundle, key_pem + chain)
    return out
