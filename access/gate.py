"""The gate every call passes before its handler: authenticate the bearer
token (or client certificate), authorize role x RPC, bind channel
principals to their channel, resolve the declared purpose of reads of
personal data, and apply break-glass grants. One place, deny by default;
handlers never see a call that failed here, and get what was decided as a
``CallScope`` (access/scope.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from access.break_glass import BreakGlass, Grant
from access.certs import principal_from_certificate
from access.errors import AccessRequestError, AuthenticationError, PermissionDeniedError
from access.permissions import (
    BREAK_GLASS_METHODS,
    PURPOSE_BOUND_METHODS,
    PURPOSE_OPTIONAL_METHODS,
    authorize,
    check_channel,
)
from access.principal import Principal
from access.purposes import BREAK_GLASS, PURPOSES, resolve
from access.scope import CallScope
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


def declared_purpose(request: Any) -> str:
    return str(getattr(request, "purpose", ""))


class Gate:
    """``verifier`` checks bearer tokens; with ``accept_certificates`` a call
    that carries no token is made by the principal its verified client
    certificate names (mTLS: the TLS layer already checked the chain)."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        accept_certificates: bool = False,
        break_glass: BreakGlass | None = None,
    ) -> None:
        self._verifier = verifier
        self._accept_certificates = accept_certificates
        self._break_glass = break_glass

    def authenticate(
        self,
        metadata: Iterable[tuple[str, Any]] | None,
        peer_certificate: bytes | Callable[[], bytes | None] | None = None,
    ) -> Principal:
        """Who is calling, or AuthenticationError. ``peer_certificate`` may
        be a function that fetches it: it is then called only when the call
        carries no token and certificates are accepted."""
        token = bearer_token(metadata)
        if token is None and self._accept_certificates:
            certificate = peer_certificate() if callable(peer_certificate) else peer_certificate
            if certificate:
                return principal_from_certificate(certificate)
        return self._verifier.verify(token)

    def authorize(self, principal: Principal, method: str, request: Any) -> CallScope:
        """PermissionDeniedError unless the principal may make this call.

        The role must be allowed ``method`` by the permission table, or hold
        an active break-glass grant for a method grants open. A channel
        principal must act for its own channel. A purpose-bound read must
        declare a purpose the role (or the grant) allows.
        """
        grant: Grant | None = None
        try:
            authorize(principal, method)
        except PermissionDeniedError:
            grant = self._grant(principal) if method in BREAK_GLASS_METHODS else None
            if grant is None:
                raise
            if declared_purpose(request) != BREAK_GLASS:
                raise PermissionDeniedError(
                    "purpose: under a break-glass grant the purpose must be break_glass"
                ) from None
        for channel_id in _channels(request):
            if channel_id:  # an empty one is the validator's to report
                check_channel(principal, channel_id)
        scope = CallScope(principal)
        if method in PURPOSE_BOUND_METHODS or (
            method in PURPOSE_OPTIONAL_METHODS and declared_purpose(request)
        ):
            name = declared_purpose(request)
            if name == BREAK_GLASS and method not in BREAK_GLASS_METHODS:
                raise PermissionDeniedError(f"purpose: break_glass does not apply to {method}")
            if grant is None and name == BREAK_GLASS:
                grant = self._grant(principal)
            scope.purpose = resolve(principal, name, break_glass=grant is not None)
            scope.grant_id = grant.grant_id if grant is not None else ""
        return scope

    def _grant(self, principal: Principal) -> Grant | None:
        return self._break_glass.active_grant(principal) if self._break_glass else None


def unauthenticated_scope(method: str, request: Any) -> CallScope:
    """Development mode (no credentials): no roles to check, but a read of
    personal data still declares a known purpose, and break-glass (which
    needs a grantee) is unavailable."""
    scope = CallScope(None)
    if method in PURPOSE_BOUND_METHODS or (
        method in PURPOSE_OPTIONAL_METHODS and declared_purpose(request)
    ):
        name = declared_purpose(request)
        if not name:
            raise PermissionDeniedError("purpose: a read of personal data needs a declared purpose")
        if name not in PURPOSES:
            raise AccessRequestError("purpose", "unknown purpose (see AccessService.ListPurposes)")
        if name == BREAK_GLASS:
            raise PermissionDeniedError("purpose: break_glass needs an authenticated grantee")
        scope.purpose = PURPOSES[name]
    return scope


def batch_operations(request: object) -> list[object | None]:
    """The operation of each item of a batch request (ReplayOffline), None
    for an item without one; [] for any other request."""
    found: list[object | None] = []
    for item in getattr(request, "items", ()):
        operation = item.WhichOneof("operation") if hasattr(item, "WhichOneof") else None
        found.append(getattr(item, operation) if operation else None)
    return found


def _channels(request: object) -> list[str]:
    """The channel ids a request acts for: its context's, or each replayed
    item's (ReplayOffline)."""
    found = [getattr(getattr(request, "context", None), "channel_id", "")]
    for operation in batch_operations(request):
        if operation is not None:
            found.append(getattr(getattr(operation, "context", None), "channel_id", ""))
    return found
