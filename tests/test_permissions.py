"""The permission table against an expectation written independently here:
every RPC of every service x every role. Changing the table without this
file (or the reverse) fails."""

from __future__ import annotations

import pytest
from loyalty.access.v1 import access_pb2
from loyalty.audit.v1 import audit_pb2
from loyalty.ledger.v1 import ledger_pb2
from loyalty.members.v1 import members_pb2
from loyalty.rewards.v1 import rewards_pb2

from access.errors import PermissionDeniedError
from access.permissions import (
    PERMISSIONS,
    UNAUTHENTICATED_METHODS,
    allowed,
    authorize,
    check_channel,
)
from access.principal import Principal, Role

R = Role
STAFF = set(Role) - {R.CHANNEL}
# "Service/Method" -> roles that may call it (everything else: denied)
EXPECTED = {
    "LedgerService/OpenAccount": {R.CHANNEL},
    "LedgerService/Earn": {R.CHANNEL},
    "LedgerService/Redeem": {R.CHANNEL},
    "LedgerService/Reverse": {R.CHANNEL},
    "LedgerService/GetBalance": {R.CHANNEL, R.MEMBER_SERVICE},
    "LedgerService/GetEntry": {R.MEMBER_SERVICE, R.COMPLIANCE},
    "LedgerService/ListEntries": {R.MEMBER_SERVICE},
    "LedgerService/Hold": {R.CHANNEL},
    "LedgerService/CaptureHold": {R.CHANNEL},
    "LedgerService/ReleaseHold": {R.CHANNEL},
    "LedgerService/Transfer": {R.CHANNEL},
    "LedgerService/ExchangeOut": {R.CHANNEL},
    "LedgerService/ExchangeIn": {R.CHANNEL},
    "LedgerService/ReplayOffline": {R.CHANNEL},
    "LedgerService/Refer": {R.CHANNEL},
    "LedgerService/GetTier": {R.CHANNEL, R.MEMBER_SERVICE},
    "LedgerService/GetLiability": {R.COMPLIANCE, R.ANALYST, R.ADMIN},
    "MemberService/Enroll": {R.CHANNEL, R.MEMBER_SERVICE},
    "MemberService/UpdateMember": {R.MEMBER_SERVICE},
    "MemberService/GetMember": {R.MEMBER_SERVICE, R.SECURITY},
    "MemberService/FindMember": {R.CHANNEL, R.MEMBER_SERVICE},
    "MemberService/EraseMember": {R.KEY_CUSTODIAN},
    "AccessService/ListPurposes": set(Role),
    "AccessService/GrantBreakGlass": {R.ADMIN},
    "AccessService/EndBreakGlass": STAFF,
    "AccessService/ListBreakGlass": {R.ADMIN, R.SECURITY},
    "AuditService/GetCheckpoint": set(Role),
    "AuditService/CreateCheckpoint": {R.COMPLIANCE},
    "AuditService/GetInclusionProof": {R.COMPLIANCE, R.CHANNEL},
    "AuditService/GetConsistencyProof": set(Role),
    "AuditService/GetEntries": {R.COMPLIANCE, R.SECURITY},
    "AuditService/GetAccessReport": {R.SECURITY},
    "RewardService/ListRewards": {R.CHANNEL, R.MEMBER_SERVICE, R.ANALYST},
    "RewardService/ClaimReward": {R.CHANNEL},
    "RewardService/GetVoucher": {R.CHANNEL},
    "RewardService/RedeemVoucher": {R.CHANNEL},
    "RewardService/CancelVoucher": {R.CHANNEL},
    "RewardService/ListVouchers": {R.CHANNEL, R.MEMBER_SERVICE},
}
PACKAGES = {
    "LedgerService": (ledger_pb2, "loyalty.ledger.v1"),
    "MemberService": (members_pb2, "loyalty.members.v1"),
    "AccessService": (access_pb2, "loyalty.access.v1"),
    "AuditService": (audit_pb2, "loyalty.audit.v1"),
    "RewardService": (rewards_pb2, "loyalty.rewards.v1"),
}


def full_name(method: str) -> str:
    service, name = method.split("/")
    return f"/{PACKAGES[service][1]}.{service}/{name}"


def _methods() -> list[str]:
    return [
        f"{service}/{m.name}"
        for service, (module, _) in PACKAGES.items()
        for m in module.DESCRIPTOR.services_by_name[service].methods
    ]


def test_expectation_covers_every_rpc_of_the_contract() -> None:
    assert sorted(EXPECTED) == sorted(_methods())


@pytest.mark.parametrize("method", _methods())
@pytest.mark.parametrize("role", list(Role))
def test_every_role_on_every_rpc(role: Role, method: str) -> None:
    full = full_name(method)
    principal = Principal("someone-1", role, "pos-test" if role is Role.CHANNEL else None)
    expected = role in EXPECTED[method]
    assert allowed(role, full) is expected
    if expected:
        authorize(principal, full)
    else:
        with pytest.raises(PermissionDeniedError, match=f"role: {role.value} may not call"):
            authorize(principal, full)


def test_table_has_no_method_outside_the_contract() -> None:
    contract = {full_name(m) for m in _methods()}
    reflection = {m for m in PERMISSIONS if "ServerReflection" in m}
    assert set(PERMISSIONS) == contract | reflection
    assert not UNAUTHENTICATED_METHODS & set(PERMISSIONS)


def test_unknown_method_is_denied_to_every_role() -> None:
    for role in Role:
        with pytest.raises(PermissionDeniedError, match="not open to any role"):
            authorize(Principal("someone-1", role), "/loyalty.ledger.v1.LedgerService/Mint")


def test_unknown_role_names_parse_to_nothing() -> None:
    assert Role.parse("superuser") is None
    assert Role.parse(7) is None
    assert Role.parse("channel") is Role.CHANNEL


def test_channel_principal_acts_only_for_its_own_channel() -> None:
    pos = Principal("pos-0042", Role.CHANNEL, "pos-test")
    check_channel(pos, "pos-test")
    with pytest.raises(PermissionDeniedError, match="only for its own channel"):
        check_channel(pos, "app-test")
    # staff act in the channel "staff", apart from every real channel's keys
    check_channel(Principal("staff-1", Role.MEMBER_SERVICE), "staff")
    with pytest.raises(PermissionDeniedError, match="staff act in channel 'staff'"):
        check_channel(Principal("staff-1", Role.MEMBER_SERVICE), "app-test")
