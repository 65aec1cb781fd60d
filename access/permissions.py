"""The permission table: which role may call which RPC. Deny by default.

One table, one decision function. Handlers never check roles themselves;
the server asks ``authorize`` before any handler runs. A method missing from
the table, or a role missing from a method's set, is denied. Channel
principals are further bound to their own channel (``check_channel``).
"""

from __future__ import annotations

from collections.abc import Mapping

from access.errors import PermissionDeniedError
from access.principal import Principal, Role

LEDGER = "/loyalty.ledger.v1.LedgerService/"

PERMISSIONS: Mapping[str, frozenset[Role]] = {
    # mutating calls: only channels, each for its own channel
    LEDGER + "OpenAccount": frozenset({Role.CHANNEL}),
    LEDGER + "Earn": frozenset({Role.CHANNEL}),
    LEDGER + "Redeem": frozenset({Role.CHANNEL}),
    LEDGER + "Reverse": frozenset({Role.CHANNEL}),
    # reads: a balance is what a till shows; history and entries carry other
    # channels' stores and orders, so they are for staff with a purpose
    LEDGER + "GetBalance": frozenset({Role.CHANNEL, Role.MEMBER_SERVICE}),
    LEDGER + "GetEntry": frozenset({Role.MEMBER_SERVICE, Role.COMPLIANCE}),
    LEDGER + "ListEntries": frozenset({Role.MEMBER_SERVICE}),
    # reflection: any authenticated principal may list the contract
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": frozenset(Role),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": frozenset(Role),
}

# calls that change the journal: what abuse limits count
MUTATING_METHODS = frozenset(LEDGER + name for name in ("OpenAccount", "Earn", "Redeem", "Reverse"))

# needs no credentials at all: load balancers and orchestrators probe it
UNAUTHENTICATED_METHODS = frozenset(
    {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}
)


def allowed(role: Role, method: str) -> bool:
    return role in PERMISSIONS.get(method, frozenset())


def authorize(principal: Principal, method: str) -> None:
    """Raise PermissionDeniedError unless the principal's role may call ``method``."""
    if method not in PERMISSIONS:
        raise PermissionDeniedError(f"method: {method} is not open to any role")
    if not allowed(principal.role, method):
        raise PermissionDeniedError(f"role: {principal.role.value} may not call {method}")


def check_channel(principal: Principal, channel_id: str) -> None:
    """A channel principal acts only for its own channel."""
    if principal.role is Role.CHANNEL and principal.channel != channel_id:
        raise PermissionDeniedError(
            "context.channel_id: a channel principal may act only for its own channel"
        )
