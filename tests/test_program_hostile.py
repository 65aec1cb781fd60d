"""Hostile tests of the program features (lots, holds, computed earns,
partners, offline replay), from a review: each failed before its fix. The
comment above each test states the rule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from tests.conftest import ctx, key
from tests.support.program import PROGRAM, START, ProgramServer

LIMIT = 1_000_000  # ProgramServer's max_points_per_entry


@pytest.fixture
def ps(db_url: str, tmp_path: Path) -> Iterator[ProgramServer]:
    server = ProgramServer(db_url, tmp_path)
    yield server
    server.close()


def _code(call, *args, **kw) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        call(*args, **kw)
    return err.value.code(), err.value.details() or ""


def _at(moment: dt.datetime) -> Timestamp:
    return Timestamp(seconds=int(moment.timestamp()))


# a computed earn obeys the per-entry limit like `points` does (INVALID_ARGUMENT).
def test_computed_earn_is_bounded_by_the_per_entry_limit(ps: ProgramServer) -> None:
    member = ps.open()
    code, _ = _code(ps.purchase, member, 10**15, "coffee")  # would be 2 * 10^13 points
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert ps.balance(member).points == 0


# A purchase worth more than int64 points is INVALID_ARGUMENT, not a retryable
# UNAVAILABLE "storage error" (an EncodingError would sink the whole batch).
def test_computed_earn_overflowing_int64_is_invalid_argument(db_url: str, tmp_path: Path) -> None:
    rich = PROGRAM.replace(
        "[earn.base_rate]\nnone = 1", "[earn]\nminor_per_unit = 1\n\n[earn.base_rate]\nnone = 10000"
    )
    server = ProgramServer(db_url, tmp_path, program=rich)
    try:
        member = server.open()
        code, details = _code(server.purchase, member, 10**15)  # 10^19 points > 2^63 - 1
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    finally:
        server.close()


# points credited by ExchangeIn obey the per-entry limit (10^6 units x 10 = 10^7).
def test_exchange_in_is_bounded_by_the_per_entry_limit(ps: ProgramServer) -> None:
    member = ps.open()
    request = pb.ExchangeInRequest(
        idempotency_key=key("xi"),
        context=ctx("partner-test"),
        member_account_id=member,
        partner_id="hotel-test",
        partner_units=LIMIT,
    )
    code, _ = _code(ps.stub.ExchangeIn, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert ps.balance(member).points == 0


# ExchangeOut never debits points the partner does not pay for (150 points at
# 0.01 unit/point: 1 unit; the member must not lose 150 points, only 100, or be refused).
def test_exchange_out_does_not_swallow_the_remainder(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 1_000)
    request = pb.ExchangeOutRequest(
        idempotency_key=key("xo"),
        context=ctx("partner-test"),
        member_account_id=member,
        partner_id="hotel-test",
        points=150,
    )
    try:
        out = ps.stub.ExchangeOut(request)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # refusing is fine too
        return
    debited = sum(p.points for p in out.entry.postings)
    assert debited == out.partner_units * 100, (debited, out.partner_units)


# A purchase worth nothing earns nothing (like 0.50 EUR: INVALID_ARGUMENT), so 0.00 EUR
# purchases within 24 h of an appliance cannot mint the 200-point follow-up bonus.
def test_zero_value_purchase_earns_no_follow_up_bonus(ps: ProgramServer) -> None:
    member = ps.open()
    ps.purchase(member, 50_000, "appliance")
    before = ps.balance(member).points
    code, details = _code(ps.purchase, member, 0)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("purchase")
    assert ps.balance(member).points == before


# ReplayOffline counts each item against the per-member limit (docs/access-control.md
# 6: "token buckets per member on mutating calls"): 50 earns for one member do not all pass.
def test_replay_offline_counts_against_the_member_rate_limit(db_url: str, tmp_path: Path) -> None:
    from access.ratelimit import Rate
    from ledger.config import ServerConfig
    from ledger.server import LedgerServer
    from tests.conftest import open_account

    config = ServerConfig(
        data_dir=tmp_path,
        database_url=db_url,
        listen="127.0.0.1:0",
        member_rate=Rate(0.01, 3),
        auth="none",
        plaintext=True,
    )
    server = LedgerServer(config)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            member = open_account(stub)
            when = _at(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
            items = [
                pb.ReplayItem(
                    occurred_at=when,
                    earn=pb.EarnRequest(
                        idempotency_key=key("off"),
                        context=ctx(),
                        member_account_id=member,
                        points=1,
                    ),
                )
                for _ in range(50)
            ]
            try:
                results = stub.ReplayOffline(pb.ReplayOfflineRequest(items=items)).results
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                return
            applied = sum(1 for r in results if r.code == 0)
            assert applied <= 3, f"{applied} earns for one member in one call"
    finally:
        server.stop(grace=1)


# One replayed item carrying personal data gets its own INVALID_ARGUMENT result
# ("items[1]..."); the other items still apply.
def test_replay_offline_personal_data_fails_only_its_item(ps: ProgramServer) -> None:
    member = ps.open()
    when = _at(START - dt.timedelta(minutes=5))
    items = [
        pb.ReplayItem(
            occurred_at=when,
            earn=pb.EarnRequest(
                idempotency_key=key("off"), context=ctx(), member_account_id=member, points=5
            ),
        ),
        pb.ReplayItem(
            occurred_at=when,
            earn=pb.EarnRequest(
                idempotency_key=key("off"),
                context=ctx(external="jane.doe@example.com"),
                member_account_id=member,
                points=5,
            ),
        ),
    ]
    results = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=items)).results
    assert [r.code for r in results] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert results[1].message.startswith("items[1].earn.context.external_transaction_id:")
    assert ps.balance(member).points == 5


def test_replay_offline_timestamp_nanos_out_of_range_fail_their_item(ps: ProgramServer) -> None:
    member = ps.open()
    good = _at(START - dt.timedelta(minutes=5))
    items = [
        pb.ReplayItem(
            occurred_at=Timestamp(seconds=good.seconds, nanos=nanos),
            earn=pb.EarnRequest(
                idempotency_key=key("off"), context=ctx(), member_account_id=member, points=5
            ),
        )
        for nanos in (0, -1, 1_000_000_000, 999_999_999)
    ]
    results = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=items)).results
    bad = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [r.code for r in results] == [0, bad, bad, 0]
    assert results[1].message == "items[1].occurred_at: nanos must be 0..999999999"
    assert ps.balance(member).points == 10
