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
MEMBERS = "/loyalty.members.v1.MemberService/"
ACCESS = "/loyalty.access.v1.AccessService/"
AUDIT = "/loyalty.audit.v1.AuditService/"
REWARDS = "/loyalty.rewards.v1.RewardService/"
STAFF = frozenset(Role) - {Role.CHANNEL}

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
    LEDGER + "Hold": frozenset({Role.CHANNEL}),
    LEDGER + "CaptureHold": frozenset({Role.CHANNEL}),
    LEDGER + "ReleaseHold": frozenset({Role.CHANNEL}),
    LEDGER + "Transfer": frozenset({Role.CHANNEL}),
    LEDGER + "ExchangeOut": frozenset({Role.CHANNEL}),
    LEDGER + "ExchangeIn": frozenset({Role.CHANNEL}),
    LEDGER + "ReplayOffline": frozenset({Role.CHANNEL}),
    LEDGER + "Refer": frozenset({Role.CHANNEL}),
    LEDGER + "GetTier": frozenset({Role.CHANNEL, Role.MEMBER_SERVICE}),
    # aggregates only: no member, no personal data
    LEDGER + "GetLiability": frozenset({Role.COMPLIANCE, Role.ANALYST, Role.ADMIN}),
    # rewards and vouchers: channels sell and honour them; a member's
    # vouchers (with codes only for the channel that sold them) are also
    # for member service, without codes (a code is as good as the goods)
    REWARDS + "ListRewards": frozenset({Role.CHANNEL, Role.MEMBER_SERVICE, Role.ANALYST}),
    REWARDS + "ClaimReward": frozenset({Role.CHANNEL}),
    REWARDS + "GetVoucher": frozenset({Role.CHANNEL}),
    REWARDS + "RedeemVoucher": frozenset({Role.CHANNEL}),
    REWARDS + "CancelVoucher": frozenset({Role.CHANNEL}),
    REWARDS + "ListVouchers": frozenset({Role.CHANNEL, Role.MEMBER_SERVICE}),
    # members: channels enroll and look up by phone at a till but never read
    # personal data; reads declare a purpose (access/purposes.py)
    MEMBERS + "Enroll": frozenset({Role.CHANNEL, Role.MEMBER_SERVICE}),
    MEMBERS + "UpdateMember": frozenset({Role.MEMBER_SERVICE}),
    MEMBERS + "GetMember": frozenset({Role.MEMBER_SERVICE, Role.SECURITY}),
    MEMBERS + "FindMember": frozenset({Role.CHANNEL, Role.MEMBER_SERVICE}),
    MEMBERS + "EraseMember": frozenset({Role.KEY_CUSTODIAN}),
    # access administration
    ACCESS + "ListPurposes": frozenset(Role),
    ACCESS + "GrantBreakGlass": frozenset({Role.ADMIN}),
    ACCESS + "EndBreakGlass": STAFF,  # access/break_glass.py: an admin or the grantee
    ACCESS + "ListBreakGlass": frozenset({Role.ADMIN, Role.SECURITY}),
    # the verifiable logs: checkpoints and consistency proofs hold nothing
    # personal; entries and inclusion proofs are for compliance (a channel
    # may prove its own journal entries: a receipt, checked by the handler
    # with check_entry_channel)
    AUDIT + "GetCheckpoint": frozenset(Role),
    AUDIT + "CreateCheckpoint": frozenset({Role.COMPLIANCE}),
    AUDIT + "GetInclusionProof": frozenset({Role.COMPLIANCE, Role.CHANNEL}),
    AUDIT + "GetConsistencyProof": frozenset(Role),
    AUDIT + "GetEntries": frozenset({Role.COMPLIANCE, Role.SECURITY}),
    AUDIT + "GetAccessReport": frozenset({Role.SECURITY}),
    # reflection: any authenticated principal may list the contract
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": frozenset(Role),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": frozenset(Role),
}

# calls that change the journal: what abuse limits count
MUTATING_METHODS = frozenset(
    [
        LEDGER + name
        for name in (
            "OpenAccount",
            "Earn",
            "Redeem",
            "Reverse",
            "Hold",
            "CaptureHold",
            "ReleaseHold",
            "Transfer",
            "ExchangeOut",
            "ExchangeIn",
            "ReplayOffline",
            "Refer",
        )
    ]
    + [MEMBERS + name for name in ("Enroll", "UpdateMember", "EraseMember")]
    + [REWARDS + name for name in ("ClaimReward", "RedeemVoucher", "CancelVoucher")]
)

# lookups of a member by phone or e-mail: rate-limited per principal
LOOKUP_METHODS = frozenset({MEMBERS + "FindMember"})

# reads of personal data: the request declares a purpose (access/purposes.py)
PURPOSE_BOUND_METHODS = frozenset({MEMBERS + "GetMember"})
# reads that may declare one: without it, personal parts are withheld
PURPOSE_OPTIONAL_METHODS = frozenset({LEDGER + "GetEntry", LEDGER + "ListEntries"})

# what an active break-glass grant opens beyond the role's own permissions
BREAK_GLASS_METHODS = frozenset({MEMBERS + "GetMember"})

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


def check_entry_channel(principal: Principal | None, entry_channel: str) -> None:
    """A channel principal may see proofs only of the entries it made."""
    channel = principal is not None and principal.role is Role.CHANNEL
    if channel and principal is not None and principal.channel != entry_channel:
        raise PermissionDeniedError(
            "sequence: a channel principal may prove only its own channel's entries"
        )


# the channel id staff (any role but channel) act in: their idempotency keys
# live apart from every real channel's, so they can never take a till's key
STAFF_CHANNEL = "staff"


def check_channel(principal: Principal, channel_id: str) -> None:
    """A channel principal acts only for its own channel; staff act in the
    channel ``staff``."""
    if principal.role is Role.CHANNEL:
        if principal.channel != channel_id:
            raise PermissionDeniedError(
                "context.channel_id: a channel principal may act only for its own channel"
            )
    elif channel_id != STAFF_CHANNEL:
        raise PermissionDeniedError(
            f"context.channel_id: staff act in channel '{STAFF_CHANNEL}', not a channel's own"
        )
