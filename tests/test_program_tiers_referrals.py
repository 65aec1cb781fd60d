"""Tiers and referrals, over the wire, with the clock moved by the test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.program.config import parse_program
from ledger.program.lots import Family
from ledger.program.referrals import SELF_REFERRAL, ReferralFacts, refusal
from ledger.storage.schema import referral_refusals
from tests.conftest import ctx, key
from tests.support.program import DAY_US, PROGRAM, ProgramServer

SMALL = (
    PROGRAM
    + """
[tiers]
grower_spend_units = 100
active_purchases_per_month = 3
active_months = 1
contributor_referrals = 1
leader_spend_units = 500
leader_referrals = 2
review_days = 30

[referrals]
reward_points = 500
super_fan_chain = 2
window_days = 30
max_per_referrer = 2
max_per_device = 2
"""
)


@pytest.fixture
def ps(db_url: str, tmp_path: Path) -> Iterator[ProgramServer]:
    server = ProgramServer(db_url, tmp_path, program=SMALL)
    yield server
    server.close()


def _tier(ps: ProgramServer, member: str) -> pb.GetTierResponse:
    return ps.stub.GetTier(pb.GetTierRequest(member_account_id=member))


def _refer(
    ps: ProgramServer, referrer: str, referred: str, device: str = "", referrer_device: str = ""
) -> pb.ReferResponse:
    return ps.stub.Refer(
        pb.ReferRequest(
            idempotency_key=key("refer"),
            context=ctx("app-test"),
            member_account_id=referrer,
            referred_member_account_id=referred,
            device_id=device,
            referrer_device_id=referrer_device,
        )
    )


def _refusal(ps: ProgramServer, *args: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        _refer(ps, *args)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(err.value)
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert err.value.details().startswith("referral refused: ")  # explained in words
    return info.metadata["refusal"]


# -- tiers ------------------------------------------------------------------------


def test_tiers_upgrade_at_once_and_downgrade_at_review(ps: ProgramServer) -> None:
    member = ps.open()
    assert _tier(ps, member).tier == "none"
    ps.purchase(member, 5_000, "shoes")  # 50 EUR
    assert _tier(ps, member).tier == "trial"
    ps.purchase(member, 6_000, "shoes")  # 110 EUR in all
    assert _tier(ps, member).tier == "grower"
    ps.purchase(member, 1_000, "coffee")  # a third purchase this month
    assert _tier(ps, member).tier == "active"
    # pending purchases do not count until they clear their window
    ps.purchase(member, 40_000, "appliance")
    assert _tier(ps, member).tier == "active"
    # a month later: no purchase this month, so "active" no longer holds, but
    # a downgrade waits for the review (30 days after the last change)
    ps.advance(29 * DAY_US)
    assert _tier(ps, member).tier == "active"
    ps.advance(2 * DAY_US)
    tier = _tier(ps, member)
    assert tier.tier == "grower"
    assert [(h.from_tier, h.to_tier, h.reason) for h in tier.history] == [
        ("none", "trial", "upgrade"),
        ("trial", "grower", "upgrade"),
        ("grower", "active", "upgrade"),
        ("active", "grower", "review"),
    ]
    ps.verify()


def test_leader_needs_spend_and_referrals(ps: ProgramServer) -> None:
    leader, a, b = ps.open(), ps.open(), ps.open()
    ps.purchase(leader, 60_000, "shoes")  # 600 EUR: spend alone is not enough
    assert _tier(ps, leader).tier == "grower"
    _refer(ps, leader, a)
    _refer(ps, leader, b)
    ps.purchase(a, 1_000, "coffee")
    assert _tier(ps, leader).tier == "contributor"
    ps.purchase(b, 1_000, "coffee")
    tier = _tier(ps, leader)
    assert tier.tier == "leader" and tier.super_fan and tier.referrals == 2


# -- referrals ------------------------------------------------------------------------


def test_referral_reward_pending_until_the_purchase_clears(ps: ProgramServer) -> None:
    referrer, friend = ps.open(), ps.open()
    _refer(ps, referrer, friend, device="device-test-1")
    assert _refusal(ps, referrer, friend) == "ALREADY_REFERRED"
    assert _refusal(ps, friend, referrer) == "REFERRAL_CYCLE"
    ps.purchase(friend, 20_000, "appliance")  # a 30-day return window
    b = ps.balance(referrer)
    assert (b.points, b.available, b.pending) == (500, 0, 500)
    ps.purchase(friend, 20_000, "shoes")  # only the first purchase rewards
    assert ps.balance(referrer).points == 500
    ps.advance(30 * DAY_US)
    b = ps.balance(referrer)
    assert (b.points, b.available, b.pending) == (500, 500, 0)
    tier = _tier(ps, referrer)
    assert (tier.tier, tier.referrals) == ("contributor", 1)
    entries = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=referrer)).entries
    reward = entries[-1]
    assert reward.kind == pb.ENTRY_KIND_EARN and reward.channel_id == "program"
    assert reward.postings[0].from_account == "program:issued:referral"
    ps.verify()


def test_refund_inside_the_window_takes_the_reward_back(ps: ProgramServer) -> None:
    referrer, friend = ps.open(), ps.open()
    _refer(ps, referrer, friend)
    fake = ps.purchase(friend, 50_000, "appliance")
    assert ps.balance(referrer).pending == 500
    ps.reverse(fake.entry.sequence)  # the order was fake: refunded in full
    assert ps.balance(referrer).points == 0
    assert _tier(ps, referrer).referrals == 0
    assert _tier(ps, friend).tier == "none"  # a refunded purchase never counted
    ps.verify()


def test_referral_anti_abuse(ps: ProgramServer) -> None:
    a, b, c, d, e, f = (ps.open() for _ in range(6))
    # the referrer's own device
    assert _refusal(ps, a, b, "device-test-9", "device-test-9") == SELF_REFERRAL
    # a device the referrer was itself referred with
    _refer(ps, a, b, "device-test-2")
    assert _refusal(ps, b, c, "device-test-2") == SELF_REFERRAL
    # per-device cap (2 per window)
    _refer(ps, c, d, "device-test-3")
    _refer(ps, e, f, "device-test-3")
    g = ps.open()
    assert _refusal(ps, a, g, "device-test-3") == "DEVICE_LIMIT"
    # per-referrer cap (2 per window)
    _refer(ps, a, g, "device-test-4")
    h = ps.open()
    assert _refusal(ps, a, h, "device-test-5") == "REFERRER_LIMIT"
    # members who bought before are not new
    ps.purchase(h, 1_000, "coffee")
    assert _refusal(ps, c, h) == "NOT_NEW_MEMBER"
    # the window passes: the referrer may refer again
    ps.advance(31 * DAY_US)
    i = ps.open()
    _refer(ps, a, i, "device-test-6")
    with pytest.raises(grpc.RpcError) as err:
        _refer(ps, a, a)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ps.server.db is not None
    with ps.server.db.reader.connect() as conn:
        reasons = conn.execute(
            sa.select(referral_refusals.c.reason).order_by(referral_refusals.c.id)
        ).scalars()
        assert list(reasons) == [
            SELF_REFERRAL,
            SELF_REFERRAL,
            "DEVICE_LIMIT",
            "REFERRER_LIMIT",
            "NOT_NEW_MEMBER",
        ]
    # device ids are stored only as keyed tokens
    with ps.server.db.reader.connect() as conn:
        stored = conn.execute(sa.text("SELECT device_token FROM referrals")).scalars().all()
    assert stored and all(b"device-test" not in bytes(t) for t in stored)


def test_shared_phone_or_email_token_is_self_referral() -> None:
    """The lookup tokens are loaded by the appender (journal_writes); the rule
    itself: a shared token refuses."""
    program = parse_program({"version": 1})
    a, b = Family("mbr_" + "a" * 26, {}), Family("mbr_" + "b" * 26, {})
    shared = ReferralFacts(0, 0, True, b"")
    assert refusal(program, a, b, shared, b"", b"") == SELF_REFERRAL
    assert refusal(program, a, b, ReferralFacts(0, 0, False, b""), b"", b"") is None


def test_tier_history_survives_in_the_database_not_in_memory(db_url: str, tmp_path: Path) -> None:
    first = ProgramServer(
        db_url, tmp_path, program=SMALL, start=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    )
    member = first.open()
    first.purchase(member, 20_000, "shoes")
    first.close()
    second = ProgramServer(
        db_url, tmp_path, program=SMALL, start=dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    )
    try:
        assert _tier(second, member).tier == "grower"
        second.purchase(member, 100, "coffee")
        assert [h.to_tier for h in _tier(second, member).history] == ["grower"]
    finally:
        second.close()


def test_referral_and_tier_error_paths(ps: ProgramServer) -> None:
    referrer, friend = ps.open(), ps.open()
    bad = pb.ReferRequest(
        idempotency_key=key("refer"),
        context=ctx("app-test"),
        member_account_id=referrer,
        referred_member_account_id=friend,
        device_id="device\x00test-secret",
    )
    with pytest.raises(grpc.RpcError) as err:
        ps.stub.Refer(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("device_id:")
    assert "secret" not in err.value.details()  # names the field, never the value
    with pytest.raises(grpc.RpcError) as err:
        ps.stub.GetTier(pb.GetTierRequest(member_account_id="mbr_" + "a" * 26))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # a replayed referral answers as the first time and registers nothing more
    request = pb.ReferRequest(
        idempotency_key=key("refer"),
        context=ctx("app-test"),
        member_account_id=referrer,
        referred_member_account_id=friend,
        device_id="device-test-7",
    )
    first = ps.stub.Refer(request)
    assert ps.stub.Refer(request) == first
    assert ps.server.db is not None
    with ps.server.db.reader.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM referrals")).scalar() == 1
    other = ps.open()
    changed = pb.ReferRequest()
    changed.CopyFrom(request)
    changed.referred_member_account_id = other
    with pytest.raises(grpc.RpcError) as err:  # same key, another request
        ps.stub.Refer(changed)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_pending_referral_does_not_count_toward_the_referrers_tier(ps: ProgramServer) -> None:
    """Issue 13, item 11: a fake purchase, refunded in full, left the referrer
    at contributor (a 1.5x earn rate) until the review. A referral counts
    only once the referred purchase has cleared its return window."""
    referrer, friend = ps.open(), ps.open()
    _refer(ps, referrer, friend)
    fake = ps.purchase(friend, 50_000, "appliance")  # a 30-day return window
    tier = _tier(ps, referrer)
    assert (tier.tier, tier.referrals, tier.pending_referrals) == ("none", 0, 1)
    ps.reverse(fake.entry.sequence)
    tier = _tier(ps, referrer)
    assert (tier.tier, tier.referrals, tier.pending_referrals) == ("none", 0, 0)
    assert [h.to_tier for h in tier.history] == []  # never contributor, not even briefly

    real = ps.purchase(friend, 30_000, "appliance")  # the next purchase qualifies again
    assert ps.balance(referrer).pending == 500
    ps.advance(31 * DAY_US)
    tier = _tier(ps, referrer)
    assert (tier.tier, tier.referrals, tier.pending_referrals) == ("contributor", 1, 0)
    ps.reverse(real.entry.sequence)  # a refund after the window: the reward stays
    assert _tier(ps, referrer).referrals == 1 and ps.balance(referrer).available == 500
    ps.verify()


MINIMUM = SMALL.replace("max_per_device = 2", "max_per_device = 2\nmin_purchase_units = 50")


def test_minimum_qualifying_purchase_and_partial_refund_clawback(
    db_url: str, tmp_path: Path
) -> None:
    ps = ProgramServer(db_url, tmp_path, program=MINIMUM)
    try:
        referrer, friend = ps.open(), ps.open()
        _refer(ps, referrer, friend)
        ps.purchase(friend, 4_000, "coffee")  # 40 EUR: below the minimum, no reward
        assert ps.balance(referrer).points == 0
        bought = ps.purchase(friend, 10_000, "appliance")  # 100 EUR: the reward, pending
        assert ps.balance(referrer).pending == 500
        ps.reverse(bought.entry.sequence, bought.entry.postings[0].points // 4)  # 75 EUR left
        assert ps.balance(referrer).pending == 500  # still qualifies
        ps.reverse(bought.entry.sequence, bought.entry.postings[0].points // 2)  # 25 EUR left
        b = ps.balance(referrer)
        assert (b.points, b.pending) == (0, 0)  # below the minimum: the reward went
        assert _tier(ps, referrer).pending_referrals == 0
        ps.purchase(friend, 6_000, "shoes")  # 60 EUR, no return window: counts at once
        tier = _tier(ps, referrer)
        assert (tier.referrals, tier.pending_referrals, tier.tier) == (1, 0, "contributor")
        assert ps.balance(referrer).available == 500
        ps.verify()
    finally:
        ps.close()
