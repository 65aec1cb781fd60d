"""Retries: the same key replays the first response; another request under
the same key is refused; keys are scoped per channel; failures leave no key."""

from __future__ import annotations

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.server import LedgerServer
from tests.conftest import ctx, earn, head_sequence, key, open_account


def test_replay_returns_identical_response_and_writes_nothing(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    request = pb.EarnRequest(
        idempotency_key=key(), context=ctx(), member_account_id=account, points=40
    )
    first = stub.Earn(request)
    seq = head_sequence(server)
    replays = [stub.Earn(request) for _ in range(3)]
    assert all(
        r.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True)
        for r in replays
    )
    assert head_sequence(server) == seq
    assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 40


def test_replay_of_open_account_returns_the_same_account(stub) -> None:
    request = pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
    assert (
        stub.OpenAccount(request).member_account_id == stub.OpenAccount(request).member_account_id
    )


def test_same_key_different_request_is_already_exists(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    k = key()
    stub.Earn(
        pb.EarnRequest(idempotency_key=k, context=ctx(), member_account_id=account, points=40)
    )
    seq = head_sequence(server)
    variants = [
        lambda: stub.Earn(
            pb.EarnRequest(idempotency_key=k, context=ctx(), member_account_id=account, points=41)
        ),
        lambda: stub.Earn(
            pb.EarnRequest(
                idempotency_key=k,
                context=ctx(store_id="store-0009"),
                member_account_id=account,
                points=40,
            )
        ),
        lambda: stub.Redeem(
            pb.RedeemRequest(idempotency_key=k, context=ctx(), member_account_id=account, points=40)
        ),
    ]
    for call in variants:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "idempotency_key" in err.value.details()
        assert "different request" in err.value.details()
    assert head_sequence(server) == seq


def test_keys_are_scoped_per_channel(stub) -> None:
    account = open_account(stub)
    k = key()
    a = stub.Earn(
        pb.EarnRequest(
            idempotency_key=k, context=ctx("pos-test"), member_account_id=account, points=10
        )
    )
    b = stub.Earn(
        pb.EarnRequest(
            idempotency_key=k, context=ctx("app-test"), member_account_id=account, points=10
        )
    )
    assert a.entry.sequence != b.entry.sequence
    assert b.balance.points == 20


def test_failed_request_leaves_no_trace_and_can_be_retried(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    request = pb.RedeemRequest(
        idempotency_key=key(), context=ctx(), member_account_id=account, points=30
    )
    seq = head_sequence(server)
    with pytest.raises(grpc.RpcError) as err:
        stub.Redeem(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert head_sequence(server) == seq
    earn(stub, account, 30)
    assert stub.Redeem(request).balance.points == 0  # same key now succeeds


def test_concurrent_replays_of_one_key_append_once(stub, server: LedgerServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    account = open_account(stub)
    request = pb.EarnRequest(
        idempotency_key=key(), context=ctx(), member_account_id=account, points=7
    )
    seq = head_sequence(server)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: stub.Earn(request), range(32)))
    assert len({r.SerializeToString(deterministic=True) for r in responses}) == 1
    assert head_sequence(server) == seq + 1
    assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 7


def test_same_key_with_other_order_details_is_refused(stub, server: LedgerServer) -> None:
    """The stored fingerprint leaves order details out (it outlives erasure);
    a replay's details are compared with the sealed entry instead."""
    account = open_account(stub)
    base = dict(idempotency_key=key(), member_account_id=account, points=40)
    first = pb.EarnRequest(
        context=ctx(store_id="store-0001", external="ORD-0001"),
        purchase=pb.Money(minor_units=1999, currency_code="EUR"),
        **base,
    )
    stub.Earn(first)
    assert stub.Earn(first).entry.sequence == head_sequence(server)  # a true replay
    seq = head_sequence(server)
    others = [
        pb.EarnRequest(context=ctx(store_id="store-0002", external="ORD-0001"), **base),
        pb.EarnRequest(
            context=ctx(store_id="store-0001", external="ORD-0002"),
            purchase=pb.Money(minor_units=1999, currency_code="EUR"),
            **base,
        ),
        pb.EarnRequest(
            context=ctx(store_id="store-0001", external="ORD-0001"),
            purchase=pb.Money(minor_units=2000, currency_code="EUR"),
            **base,
        ),
    ]
    for other in others:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Earn(other)
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert head_sequence(server) == seq
    assert server.db is not None
    with server.db.reader.connect() as conn:
        import sqlalchemy as sa

        stored = conn.execute(sa.text("SELECT fingerprint, response FROM idempotency_keys")).all()
    for _fingerprint, response in stored:
        assert b"ORD-0001" not in bytes(response) and b"store-0001" not in bytes(response)
