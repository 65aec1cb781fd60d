"""The gate every ledger call passes before its handler: authenticate the
bearer token, authorize role x RPC, bind channel principals to their
channel. One place, deny by default; handlers never see a call that
failed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from access.certs import principal_from_certificate
from access.errors import AuthenticationError
from access.permissions import authorize, check_channel
from access.principal import Principal
from access.tokens import TokenVerifier

AUTHORIZATION_HEADER = "authorization"
_BEARER = "bearer "


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if any."""
    for key, value in metadata or ():
        if key != AUTHORIZATION_HEADER:
            continue
        if not isinstance(value, str) or not value.lower().startswith(_BEARER):
            raise AuthenticationError("credentials", "malformed: expected 'Bearer <token>'")
        return value[len(_BEARER) :].strip()
    return None


class Gate:
    """``verifier`` checks bearer tokens; with ``accept_certificates`` a call
    that carries no token is made by the principal its verified client
    certificate names (mTLS: the TLS layer already checked the chain)."""

    def __init__(self, verifier: TokenVerifier, *, accept_certificates: bool = False) -> None:
        self._verifier = verifier
        self._accept_certificates = accept_certificates

    def authenticate(
        self, metadata: Iterable[tuple[str, Any]] | None, peer_certificate: bytes | None = None
    ) -> Principal:
        """Who is calling, or AuthenticationError."""
        token = bearer_token(metadata)
        if token is None and peer_certificate and self._accept_certificates:
            return principal_from_certificate(peer_certificate)
        return self._verifier.verify(token)

    @staticmethod
    def authorize(principal: Principal, method: str, request: Any) -> None:
        """PermissionDeniedError unless the role may call ``method``; when the
        request carries a ChannelContext, a channel principal must act for
        its own channel."""
        authorize(principal, method)
        context = getattr(request, "context", None)
        channel_id = getattr(context, "channel_id", "")
        if channel_id:  # an empty one is the validator's to report
            check_channel(principal, channel_id)
