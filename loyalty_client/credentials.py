"""Channel credentials: TLS with a CA, mTLS with a client certificate, a
bearer token, or any combination the server is configured for."""

from __future__ import annotations

from pathlib import Path

import grpc


def _read(path: str | Path | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None


def credentials(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    token: str | None = None,
) -> grpc.ChannelCredentials:
    """TLS trusting ``ca_file`` (None: the system roots); with ``cert_file``
    and ``key_file``, mTLS; with ``token``, every call carries
    ``authorization: Bearer <token>`` (only ever over TLS)."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file: give both (mTLS) or neither")
    if token is not None and not token.strip():
        raise ValueError("token: empty")
    tls = grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(key_file),
        certificate_chain=_read(cert_file),
    )
    if token is None:
        return tls
    return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token))
