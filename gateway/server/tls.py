"""TLS for ``serve --tls``: the operator's files, or a self-signed certificate made once.

Phones only open the camera in a secure context, so the gateway on the warehouse network
needs HTTPS even without a public name. The generated certificate names localhost, this
host's name and its addresses, and is kept under ``<data_dir>/tls`` so a phone that trusted it
keeps trusting it across restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 825  # the longest validity Apple devices accept for a TLS certificate


def local_addresses() -> set[str]:
    """This host's IP addresses (loopback included), best effort."""
    addresses = {"127.0.0.1"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(str(info[4][0]))
    except OSError:
        pass
    try:  # the address used for outbound traffic = the LAN address phones reach
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            addresses.add(probe.getsockname()[0])
    except OSError:
        pass
    return addresses


def generate_self_signed(cert_path: Path, key_path: Path) -> None:
    """Write a new EC P-256 key and a self-signed certificate for this host."""
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname() or "shelfcount"
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(hostname)]
    for address in sorted(local_addresses()):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address.split("%")[0])))
        except ValueError:
            continue
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ShelfCount {hostname}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def tls_files(settings: Any) -> tuple[Path, Path]:
    """(certificate, key): the operator's when both are set, else the generated pair."""
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise ValueError("set both SHELFCOUNT_TLS_CERT and SHELFCOUNT_TLS_KEY, or neither")
        cert, key = Path(settings.tls_cert), Path(settings.tls_key)
        for path in (cert, key):
            if not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
        return cert, key
    folder = Path(settings.data_dir) / "tls"
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not (cert.is_file() and key.is_file()) or _expires_soon(cert):
        generate_self_signed(cert, key)
    return cert, key


def _expires_soon(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return True
    return cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=7)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context
