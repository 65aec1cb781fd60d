"""The permission table against an expectation written independently here:
every RPC of every service x every role. Changing the table without this
file (or the reverse) fails."""

from __future__ import annotations

import pytest
from loyalty.ledger.v1 import ledger_pb2

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
# method name -> roles that may call it (everything else: denied)
EXPECTED = {
    "OpenAccount": {R.CHANNEL},
    "Earn": {R.CHANNEL},
    "Redeem": {R.CHANNEL},
    "Reverse": {R.CHANNEL},
    "GetBalance": {R.CHANNEL, R.MEMBER_SERVICE},
    "GetEntry": {R.MEMBER_SERVICE, R.COMPLIANCE},
    "ListEntries": {R.MEMBER_SERVICE},
}


def _ledger_methods() -> list[str]:
    service = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]
    return [m.name for m in service.methods]


def test_expectation_covers_every_rpc_of_the_contract() -> None:
    assert sorted(EXPECTED) == sorted(_ledger_methods())


@pytest.mark.parametrize("method", _ledger_methods())
@pytest.mark.parametrize("role", list(Role))
def test_every_role_on_every_rpc(role: Role, method: str) -> None:
    full = f"/loyalty.ledger.v1.LedgerService/{method}"
    principal = Principal("someone-1", role, "pos-test" if role is Role.CHANNEL else None)
    expected = role in EXPECTED[method]
    assert allowed(role, full) is expected
    if expected:
        authorize(principal, full)
    else:
        with pytest.raises(PermissionDeniedError, match=f"role: {role.value} may not call"):
            authorize(principal, full)


def test_table_has_no_method_outside_the_contract() -> None:
    ledger = {f"/loyalty.ledger.v1.LedgerService/{m}" for m in _ledger_methods()}
    reflection = {m for m in PERMISSIONS if "ServerReflection" in m}
    assert set(PERMISSIONS) == ledger | reflection
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
    # staff roles are not bound to a channel by this check
    check_channel(Principal("staff-1", Role.MEMBER_SERVICE), "app-test")
