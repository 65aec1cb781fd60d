"""One scenario per program rule (docs/program-rules.md), over the wire,
with the expected balances written out by hand. Time moves by the test's
clock, never by sleeping; every scenario ends with the journal verified."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.program.terms import add_months
from tests.conftest import ctx, key
from tests.support.program import DAY_US, MINUTE_US, START, ProgramServer


@pytest.fixture
def ps(db_url: str, tmp_path: Path) -> Iterator[ProgramServer]:
    server = ProgramServer(db_url, tmp_path)
    yield server
    server.close()


def _code(call, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, **kw)
    return err.value.code(), err.value.details() or ""


def _state(b: pb.Balance) -> tuple[int, int, int, int]:
    return b.points, b.available, b.pending, b.held


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


# -- 1. holds -------------------------------------------------------------------


def test_hold_capture_partly_in_another_channel(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 100)
    held = ps.hold(member, 60, channel="app-test")  # a coupon taken in the app
    assert held.entry.kind == pb.ENTRY_KIND_HOLD
    assert _state(held.balance) == (100, 40, 0, 60)
    assert held.expires.seconds == START.timestamp() + 30 * 60  # the program's default
    with pytest.raises(grpc.RpcError):  # 60 are set aside: only 40 can be spent
        ps.redeem(member, 41)
    captured = ps.capture(member, held.hold_sequence, 50, channel="pos-test")  # used at a till
    assert captured.entry.kind == pb.ENTRY_KIND_CAPTURE
    assert captured.entry.reverses_sequence == held.hold_sequence
    assert _state(captured.balance) == (50, 50, 0, 0)  # 10 not captured went back
    # a hold resolves once; naming it again says it ended, and by which entry
    for call in (ps.capture, ps.release):
        code, details = _code(call, member, held.hold_sequence)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, details
        assert details.startswith("hold_sequence: the hold has already ended")
    # a hold is named with its member: another member's id does not find it
    other = ps.open()
    ps.earn(other, 10)
    again = ps.hold(member, 10)
    assert _code(ps.capture, other, again.hold_sequence)[0] == grpc.StatusCode.NOT_FOUND
    assert _code(ps.release, other, again.hold_sequence)[0] == grpc.StatusCode.NOT_FOUND
    ps.release(member, again.hold_sequence)
    # a capture is a redemption: it can be reversed, back into its lot
    back = ps.reverse(captured.entry.sequence)
    assert _state(back.balance) == (100, 100, 0, 0)
    ps.verify()


def _ended_by(call, *args) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as err:
        call(*args)
    return _hold_ended(err.value)


def _hold_ended(err: grpc.RpcError) -> tuple[grpc.StatusCode, dict[str, str]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert info.reason == "HOLD_ENDED", err.details()  # type: ignore[attr-defined]
    return err.code(), dict(info.metadata)  # type: ignore[attr-defined]


def test_the_loser_of_a_capture_release_race_learns_the_hold_ended(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 100)
    for _ in range(4):
        held = ps.hold(member, 10)
        with ThreadPoolExecutor(2) as pool:
            racing = [
                pool.submit(_outcome, ps.capture, member, held.hold_sequence),
                pool.submit(_outcome, ps.release, member, held.hold_sequence),
            ]
            outcomes = [f.result() for f in racing]
        won = [o for o in outcomes if isinstance(o, int)]
        lost = [o for o in outcomes if not isinstance(o, int)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        code, metadata = lost[0]
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert metadata == {
            "hold_sequence": str(held.hold_sequence),
            "ended_by_sequence": str(won[0]),
        }
        # afterwards, too; another member's id still finds nothing
        assert _ended_by(ps.capture, member, held.hold_sequence)[1] == metadata
        other = ps.open()
        assert _code(ps.capture, other, held.hold_sequence)[0] == grpc.StatusCode.NOT_FOUND
    ps.verify()


def _outcome(call, *args):
    """The entry sequence a call made, or (code, ErrorInfo metadata) of its failure."""
    try:
        return call(*args).entry.sequence
    except grpc.RpcError as err:
        return _hold_ended(err)


def test_hold_release_and_timeout(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 80)
    first = ps.hold(member, 30)
    released = ps.release(member, first.hold_sequence, channel="app-test")
    assert released.entry.kind == pb.ENTRY_KIND_RELEASE
    assert _state(released.balance) == (80, 80, 0, 0)
    second = ps.hold(member, 20, minutes=5)
    assert _state(ps.balance(member)) == (80, 60, 0, 20)
    ps.clock.advance(5 * MINUTE_US)
    # timed out: the balance shows the points free even before the sweep
    assert _state(ps.balance(member)) == (80, 80, 0, 0)
    assert ps.server.settle_now() == 1
    assert ps.server.settle_now() == 0  # nothing left to do: the sweep is idempotent
    code, details = _code(ps.capture, member, second.hold_sequence)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "timed out" in details
    entries = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries
    assert [e.kind for e in entries][:1] == [pb.ENTRY_KIND_RELEASE]
    assert entries[0].channel_id == "program"  # posted by the ledger itself
    ps.verify()


def test_hold_limits(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 10)
    code, details = _code(ps.hold, member, 5, minutes=121)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("minutes:")
    code, _ = _code(ps.hold, member, 11)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert _state(ps.balance(member)) == (10, 10, 0, 0)


# -- 2. lots and expiry ------------------------------------------------------------


def test_every_mutation_answers_with_the_points_by_expiry(ps: ProgramServer) -> None:
    member = ps.open()
    jan = ps.earn(member, 100)  # expires 2027-01-15 12:00
    january = jan.balance.expiring[0].expires.seconds
    assert [(e.expires.seconds, e.points) for e in jan.balance.expiring] == [(january, 100)]
    ps.clock.set(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    march = dt.datetime(2027, 3, 1, tzinfo=dt.UTC).timestamp()
    mar = ps.earn(member, 50)
    assert [(e.expires.seconds, e.points) for e in mar.balance.expiring] == [
        (january, 100),
        (march, 50),
    ]
    again = ps.earn(member, 5)  # expires with the March lot: one line per moment
    assert [(e.expires.seconds, e.points) for e in again.balance.expiring] == [
        (january, 100),
        (march, 55),
    ]
    spent = ps.redeem(member, 130)  # soonest first: January, then March
    assert [(e.expires.seconds, e.points) for e in spent.balance.expiring] == [(march, 25)]
    held = ps.hold(member, 20)
    assert [(e.expires.seconds, e.points) for e in held.balance.expiring] == [(march, 5)]
    released = ps.release(member, held.hold_sequence)
    assert [(e.expires.seconds, e.points) for e in released.balance.expiring] == [(march, 25)]
    back = ps.reverse(spent.entry.sequence, 30)
    assert list(back.balance.expiring) == list(ps.balance(member).expiring)
    assert sum(e.points for e in back.balance.expiring) == back.balance.available == 55
    ps.verify()


def test_redeem_uses_soonest_expiring_lots_and_reversal_restores_them(
    ps: ProgramServer,
) -> None:
    member = ps.open()
    jan = ps.earn(member, 100).entry.sequence  # expires 2027-01-15
    ps.clock.set(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    mar = ps.earn(member, 50).entry.sequence  # expires 2027-03-01
    spent = ps.redeem(member, 120)
    assert [(p.from_account, p.points) for p in spent.entry.postings] == [
        (f"{member}/lot/{jan}", 100),
        (f"{member}/lot/{mar}", 20),
    ]
    # GetBalance, and every mutation's answer, list the available points by expiry
    march = [(dt.datetime(2027, 3, 1, tzinfo=dt.UTC).timestamp(), 30)]
    assert [(e.expires.seconds, e.points) for e in ps.balance(member).expiring] == march
    assert [(e.expires.seconds, e.points) for e in spent.balance.expiring] == march
    back = ps.reverse(spent.entry.sequence, 30)  # the last lot used comes back first
    assert [(p.to_account, p.points) for p in back.entry.postings] == [
        (f"{member}/lot/{mar}", 20),
        (f"{member}/lot/{jan}", 10),
    ]
    both = [
        (dt.datetime(2027, 1, 15, 12, tzinfo=dt.UTC).timestamp(), 10),
        (dt.datetime(2027, 3, 1, tzinfo=dt.UTC).timestamp(), 50),
    ]
    assert [(e.expires.seconds, e.points) for e in ps.balance(member).expiring] == both
    assert [(e.expires.seconds, e.points) for e in back.balance.expiring] == both
    # the January lot expires with its original date, the March lot lives on
    ps.clock.set(dt.datetime(2027, 1, 16, tzinfo=dt.UTC))
    assert _state(ps.balance(member)) == (50, 50, 0, 0)
    assert ps.server.settle_now() == 1
    assert ps.server.settle_now() == 0
    entries = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries
    expired = entries[0]
    assert expired.kind == pb.ENTRY_KIND_EXPIRE
    assert [(p.from_account, p.to_account, p.points) for p in expired.postings] == [
        (f"{member}/lot/{jan}", "program:expired", 10)
    ]
    liability = ps.stub.GetLiability(pb.GetLiabilityRequest())
    assert (liability.issued, liability.redeemed, liability.expired) == (150, 90, 10)
    assert liability.outstanding == 50
    assert liability.breakage_rate == pytest.approx(10 / 150)
    assert liability.redemption_rate == pytest.approx(90 / 150)
    ps.verify()


def test_expiry_policies() -> None:
    from ledger.program.config import parse_program
    from ledger.program.terms import expires_us

    earned = _us(dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC))
    months = parse_program({"version": 1, "expiry": {"policy": "months", "months": 1}})
    assert expires_us(months, earned) == _us(dt.datetime(2026, 2, 28, 10, tzinfo=dt.UTC))
    year_end = parse_program({"version": 1, "expiry": {"policy": "end_of_year", "years": 1}})
    assert expires_us(year_end, earned) == _us(dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
    assert expires_us(parse_program({"version": 1}), earned) == 0
    assert add_months(earned, 13) == _us(dt.datetime(2027, 2, 28, 10, tzinfo=dt.UTC))


# -- 3. pending points ----------------------------------------------------------------


def test_pending_points_mature_after_the_return_window(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 10)
    bought = ps.purchase(member, 49_900, "appliance", points=300)  # a 30-day return window
    assert _state(bought.balance) == (310, 10, 300, 0)
    assert bought.entry.postings[0].to_account == f"{member}/pending/{bought.entry.sequence}"
    code, _ = _code(ps.redeem, member, 11)  # pending points cannot be spent
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # a partial refund inside the window takes the purchase's pending points
    refund = ps.reverse(bought.entry.sequence, 100)
    assert [(p.from_account, p.points) for p in refund.entry.postings] == [
        (f"{member}/pending/{bought.entry.sequence}", 100)
    ]
    assert _state(refund.balance) == (210, 10, 200, 0)
    ps.clock.advance(30 * DAY_US)
    assert _state(ps.balance(member)) == (210, 210, 0, 0)
    assert ps.server.settle_now() == 1
    matured = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries[0]
    assert matured.kind == pb.ENTRY_KIND_MATURE
    assert ps.redeem(member, 210).balance.points == 0
    ps.verify()


def test_refund_after_points_were_spent_takes_other_lots(ps: ProgramServer) -> None:
    member = ps.open()
    bought = ps.earn(member, 100).entry.sequence
    ps.redeem(member, 70)
    newer = ps.earn(member, 50).entry.sequence
    # the whole refund needs 100 points; the member holds 30 + 50
    code, _ = _code(ps.reverse, bought)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    refund = ps.reverse(bought, 80)  # the purchase's own lot first, then the newer one
    assert [(p.from_account, p.points) for p in refund.entry.postings] == [
        (f"{member}/lot/{bought}", 30),
        (f"{member}/lot/{newer}", 50),
    ]
    assert _state(refund.balance) == (0, 0, 0, 0)
    ps.verify()


# -- 4. earn rules ----------------------------------------------------------------------


def test_computed_earn_records_every_rule(ps: ProgramServer) -> None:
    member = ps.open()
    coffee = ps.purchase(member, 1_234, "coffee")  # 12.34 EUR
    assert [(r.rule_id, r.points) for r in coffee.rules] == [("base", 12), ("coffee-x2", 12)]
    # the journal itself says why: one posting per rule
    assert [(p.from_account, p.points) for p in coffee.entry.postings] == [
        ("program:issued:base", 12),
        ("program:issued:coffee-x2", 12),
    ]
    assert coffee.balance.points == 24


def test_campaign_applies_only_in_its_window(ps: ProgramServer) -> None:
    member = ps.open()
    ps.clock.set(dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC))
    friday = ps.purchase(member, 10_000, "shoes")
    assert [(r.rule_id, r.points) for r in friday.rules] == [("base", 100), ("black-friday", 200)]
    ps.clock.set(dt.datetime(2026, 11, 28, 0, tzinfo=dt.UTC))  # ends is exclusive
    after = ps.purchase(member, 10_000, "shoes")
    assert [(r.rule_id, r.points) for r in after.rules] == [("base", 100)]


def test_follow_up_reward_within_its_window(ps: ProgramServer) -> None:
    member = ps.open()
    fridge = ps.purchase(member, 50_000, "appliance")
    assert [r.rule_id for r in fridge.rules] == ["base"]  # nothing before it
    ps.clock.advance(23 * 60 * MINUTE_US)
    cable = ps.purchase(member, 1_000, "accessories")
    assert [(r.rule_id, r.points) for r in cable.rules] == [("base", 10), ("after-appliance", 200)]
    ps.clock.advance(2 * 60 * MINUTE_US)  # 25 h after the appliance
    late = ps.purchase(member, 1_000, "accessories")
    assert [r.rule_id for r in late.rules] == ["base"]
    ps.verify()


def test_computed_earn_refusals(ps: ProgramServer) -> None:
    member = ps.open()
    wrong = pb.EarnRequest(
        idempotency_key=key("earn"),
        context=ctx(),
        member_account_id=member,
        purchase=pb.Money(minor_units=1_000, currency_code="USD"),
    )
    code, details = _code(ps.stub.Earn, wrong)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("purchase.currency_code:")
    code, details = _code(ps.purchase, member, 50)  # 0.50 EUR earns nothing
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("purchase:")
    code, details = _code(ps.earn, member, 0)  # neither points nor a purchase
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("points:")
    code, details = _code(ps.purchase, member, 1_000, "Not A Category")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("categories[0]:")
    assert ps.balance(member).points == 0
    assert ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries == []


# -- 7. transfers and partner exchange ---------------------------------------------------


def test_transfer_keeps_the_soonest_expiry(ps: ProgramServer) -> None:
    parent, child = ps.open(), ps.open()
    ps.earn(parent, 100)
    sent = ps.stub.Transfer(
        pb.TransferRequest(
            idempotency_key=key("transfer"),
            context=ctx("app-test"),
            member_account_id=parent,
            to_member_account_id=child,
            points=40,
        )
    )
    assert sent.entry.kind == pb.ENTRY_KIND_TRANSFER
    assert _state(sent.balance) == (60, 60, 0, 0)
    received = ps.balance(child)
    assert _state(received) == (40, 40, 0, 0)
    assert [e.expires.seconds for e in received.expiring] == [
        dt.datetime(2027, 1, 15, 12, tzinfo=dt.UTC).timestamp()
    ]
    for to, points, want in (
        (parent, 1, grpc.StatusCode.INVALID_ARGUMENT),
        (child, 61, grpc.StatusCode.FAILED_PRECONDITION),
        ("mbr_" + "a" * 26, 1, grpc.StatusCode.NOT_FOUND),
    ):
        request = pb.TransferRequest(
            idempotency_key=key("transfer"),
            context=ctx("app-test"),
            member_account_id=parent,
            to_member_account_id=to,
            points=points,
        )
        assert _code(ps.stub.Transfer, request)[0] == want
    ps.verify()


def test_partner_exchange_through_the_clearing_account(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 1_000)
    out = ps.stub.ExchangeOut(
        pb.ExchangeOutRequest(
            idempotency_key=key("xo"),
            context=ctx("partner-test"),
            member_account_id=member,
            partner_id="hotel-test",
            points=500,
        )
    )
    assert out.partner_units == 5 and out.balance.points == 500
    assert [(p.to_account, p.points) for p in out.entry.postings][-1] == ("partner:hotel-test", 500)
    came = ps.stub.ExchangeIn(
        pb.ExchangeInRequest(
            idempotency_key=key("xi"),
            context=ctx("partner-test"),
            member_account_id=member,
            partner_id="hotel-test",
            partner_units=3,
        )
    )
    assert came.balance.points == 530
    liability = ps.stub.GetLiability(pb.GetLiabilityRequest())
    assert [(b.key, b.points) for b in liability.by_partner] == [("hotel-test", 470)]
    # gross flows, not only the net clearing balance (issue 13, item 11), and
    # issued counts the points that came in from the partner
    gross = [(g.partner, g.exchanged_out, g.exchanged_in) for g in liability.by_partner_gross]
    assert gross == [("hotel-test", 500, 30)]
    assert liability.issued == 1_000 + 30
    assert liability.outstanding == 530
    unknown = pb.ExchangeOutRequest(
        idempotency_key=key("xo"),
        context=ctx("partner-test"),
        member_account_id=member,
        partner_id="airline-test",
        points=100,
    )
    code, details = _code(ps.stub.ExchangeOut, unknown)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("partner_id:")
    ps.verify()


# -- 8. offline replay ---------------------------------------------------------------------


def _at(moment: dt.datetime) -> Timestamp:
    return Timestamp(seconds=int(moment.timestamp()))


def test_offline_replay_in_store_order_and_twice(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 10)
    outage = START - dt.timedelta(hours=3)
    store = ctx("pos-test", store_id="store-test-1")
    earn = pb.EarnRequest(
        idempotency_key="offline-earn-0001", context=store, member_account_id=member, points=100
    )
    spend = pb.RedeemRequest(
        idempotency_key="offline-redeem-01", context=store, member_account_id=member, points=90
    )
    nobody = pb.RedeemRequest(  # a well-formed account id that was never opened
        idempotency_key="offline-redeem-02",
        context=store,
        member_account_id="mbr_" + "a" * 26,
        points=5,
    )
    # queued out of order: the redemption happened after the earn
    items = [
        pb.ReplayItem(occurred_at=_at(outage + dt.timedelta(minutes=5)), redeem=spend),
        pb.ReplayItem(occurred_at=_at(outage), earn=earn),
        pb.ReplayItem(occurred_at=_at(outage + dt.timedelta(minutes=9)), redeem=nobody),
        pb.ReplayItem(redeem=spend),  # no time
    ]
    first = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=items))
    codes = [(r.index, r.code) for r in first.results]
    assert codes == [
        (0, 0),
        (1, 0),
        (2, grpc.StatusCode.NOT_FOUND.value[0]),
        (3, grpc.StatusCode.INVALID_ARGUMENT.value[0]),
    ]  # a redemption beyond the balance: tests/test_offline_shortfall.py
    assert first.results[0].redeem.balance.points == 20
    assert first.results[3].message.startswith("items[3].occurred_at:")
    # the offline lot's expiry counts from when it was earned in the store,
    # so it expires before the online one and was spent first
    assert [(e.expires.seconds * 1_000_000, e.points) for e in ps.balance(member).expiring] == [
        (add_months(_us(outage), 12), 10),
        (add_months(_us(START), 12), 10),
    ]
    head = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries[0]
    again = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=items))
    assert [r.SerializeToString() for r in again.results[:2]] == [
        r.SerializeToString() for r in first.results[:2]
    ]
    after = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries[0]
    assert after.sequence == head.sequence  # nothing counted twice
    assert ps.balance(member).points == 20
    ps.verify()


def test_offline_replay_refuses_future_times_and_empty_batches(ps: ProgramServer) -> None:
    member = ps.open()
    future = pb.ReplayItem(
        occurred_at=_at(START + dt.timedelta(hours=1)),
        earn=pb.EarnRequest(
            idempotency_key=key("earn"), context=ctx(), member_account_id=member, points=5
        ),
    )
    result = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=[future])).results[0]
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "future" in result.message
    code, details = _code(ps.stub.ReplayOffline, pb.ReplayOfflineRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("items:")
    assert ps.balance(member).points == 0


# -- erasure of a member with lots, pending points and a hold ----------------------------


def test_erase_forfeits_every_sub_account(db_url: str, tmp_path: Path) -> None:
    from loyalty.members.v1 import members_pb2 as mpb
    from loyalty.members.v1 import members_pb2_grpc

    ps = ProgramServer(db_url, tmp_path)
    try:
        member = ps.open()
        ps.earn(member, 100)
        ps.purchase(member, 20_000, "appliance", points=50)  # pending
        hold = ps.hold(member, 30)
        members = members_pb2_grpc.MemberServiceStub(ps.channel)
        erased = members.EraseMember(
            mpb.EraseMemberRequest(
                idempotency_key=key("erase"),
                member_account_id=member,
                reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
            )
        )
        assert erased.forfeited_points == 150
        # the erasure ended the hold
        assert _ended_by(ps.capture, member, hold.hold_sequence)[1]["ended_by_sequence"] == str(
            erased.erasure_sequence
        )
        assert _code(ps.earn, member, 1)[0] == grpc.StatusCode.FAILED_PRECONDITION
        ps.clock.advance(400 * DAY_US)
        assert ps.server.settle_now() == 0  # nothing of an erased member is ever due
        ps.verify()
    finally:
        ps.close()


# -- the program file -----------------------------------------------------------------------


def test_program_file_is_validated_with_named_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger.cli import main as cli

    root = Path(__file__).resolve().parent.parent
    assert (
        cli(["--log-level", "error", "program", "check", str(root / "examples/program.toml")]) == 0
    )
    assert '"program_id": "example-retail"' in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'version = 1\n[expiry]\npolicy = "weekly"\n'
        '[[earn.campaigns]]\nid = "c1"\nstarts = 2026-01-02T00:00:00Z\n'
        "ends = 2026-01-01T00:00:00Z\nfactor = 2\n"
        '[[partners]]\nid = "p"\n[[partners]]\nid = "p"\n'
    )
    assert cli(["--log-level", "error", "program", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "expiry.policy:" in err
    assert "earn.campaigns.0: ends: must be after starts" in err
    dupes = tmp_path / "dupes.toml"
    dupes.write_text('version = 1\n[[partners]]\nid = "p"\n[[partners]]\nid = "p"\n')
    assert cli(["--log-level", "error", "program", "check", str(dupes)]) == 2
    assert "partners: ids must be unique" in capsys.readouterr().err
    # the server refuses to start with it, before opening anything
    args = ["--log-level", "error", "serve", "--data-dir", str(tmp_path), "--program", str(bad)]
    assert cli([*args, "--plaintext", "--auth", "none"]) == 2
    assert "program file: expiry.policy:" in capsys.readouterr().err
    (tmp_path / "not.toml").write_text("version = \n")
    assert cli(["--log-level", "error", "program", "check", str(tmp_path / "not.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("version = 1\nexpiry_policy = 'never'\n")
    assert cli(["--log-level", "error", "program", "check", str(unknown)]) == 2
    assert "expiry_policy: Extra inputs are not permitted" in capsys.readouterr().err
