"""X.509 identities for mTLS, and a development CA.

A client certificate names its principal the same way a token does:
subject CN = principal id, subject OU = role, and for a channel principal a
SAN URI ``urn:loyalty-ledger:channel:<channel id>``. ``make_dev_certs``
writes a local CA, a server certificate for localhost/127.0.0.1 and client
certificates, so the secure set-up runs in one step on a laptop. They are
for development only: keys are unencrypted files (mode 0600).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from access.errors import AuthenticationError
from access.principal import Principal, Role

CHANNEL_URI_PREFIX = "urn:loyalty-ledger:channel:"
DEV_VALIDITY = datetime.timedelta(days=30)


def principal_from_certificate(pem: bytes) -> Principal:
    """The principal a verified client certificate names."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise AuthenticationError("certificate", "malformed") from None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(cn) != 1 or len(ou) != 1:
        raise AuthenticationError("certificate", "subject needs exactly one CN and one OU")
    role = Role.parse(ou[0].value)
    if role is None:
        raise AuthenticationError("certificate", "unknown role in OU")
    channel = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)]
        channels = [u[len(CHANNEL_URI_PREFIX) :] for u in uris if u.startswith(CHANNEL_URI_PREFIX)]
        channel = channels[0] if len(channels) == 1 else None
    except x509.ExtensionNotFound:
        pass
    if role is Role.CHANNEL and not channel:
        raise AuthenticationError("certificate", "a channel certificate must name its channel")
    return Principal(str(cn[0].value), role, channel, credential_id=format(cert.serial_number, "x"))


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    name: str  # file stem
    principal_id: str
    role: Role
    channel: str | None = None


DEV_CLIENTS = (
    ClientIdentity("pos-demo", "pos-0001", Role.CHANNEL, "pos-demo"),
    ClientIdentity("member-service", "staff-0001", Role.MEMBER_SERVICE),
    ClientIdentity("compliance", "staff-0002", Role.COMPLIANCE),
)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + DEV_VALIDITY)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def make_dev_certs(out: Path, clients: tuple[ClientIdentity, ...] = DEV_CLIENTS) -> list[Path]:
    """A CA, a server certificate and client certificates under ``out``."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loyalty-ledger dev CA")])
    ca = _cert(
        ca_name, ca_key, ca_name, ca_key, [(x509.BasicConstraints(ca=True, path_length=0), True)]
    )
    written = [out / "ca.pem"]
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        server_key,
        ca_name,
        ca_key,
        [
            (
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                False,
            ),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )
    (out / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_private(out / "server.key", _key_pem(server_key))
    written += [out / "server.pem", out / "server.key"]

    for client in clients:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, client.principal_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, client.role.value),
            ]
        )
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        ]
        if client.channel:
            uri = x509.UniformResourceIdentifier(CHANNEL_URI_PREFIX + client.channel)
            extensions.append((x509.SubjectAlternativeName([uri]), False))
        cert = _cert(subject, key, ca_name, ca_key, extensions)
        (out / f"{client.name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(out / f"{client.name}.key", _key_pem(key))
        written += [out / f"{client.name}.pem", out / f"{client.name}.key"]
    return written
