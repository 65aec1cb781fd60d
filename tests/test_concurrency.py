"""Races: many concurrent redeems of one member from several clients can
only partly succeed, and never overdraw."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.server import LedgerServer
from ledger.verify import verify_database
from tests.conftest import ctx, earn, key, open_account


def test_concurrent_redeems_never_overdraw(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    earn(stub, account, 100)
    channels = [grpc.insecure_channel(f"127.0.0.1:{server.port}") for _ in range(4)]
    stubs = [ledger_pb2_grpc.LedgerServiceStub(c) for c in channels]

    def attempt(i: int) -> grpc.StatusCode:
        request = pb.RedeemRequest(
            idempotency_key=key("race"),
            context=ctx(f"pos-{i % 4}"),
            member_account_id=account,
            points=7,
        )
        try:
            stubs[i % 4].Redeem(request)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    try:
        with ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(attempt, range(64)))
    finally:
        for c in channels:
            c.close()

    assert codes.count(grpc.StatusCode.OK) == 100 // 7
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) == 64 - 100 // 7
    balance = stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance
    assert balance.points == 100 % 7
    assert server.db is not None
    result = verify_database(server.db)
    assert result, result.problems


def test_concurrent_mixed_traffic_keeps_a_valid_chain(stub, server: LedgerServer) -> None:
    accounts = [open_account(stub) for _ in range(5)]
    for a in accounts:
        earn(stub, a, 50)

    def work(i: int) -> None:
        a = accounts[i % 5]
        try:
            if i % 3 == 0:
                stub.Redeem(
                    pb.RedeemRequest(
                        idempotency_key=key(), context=ctx(), member_account_id=a, points=9
                    )
                )
            else:
                stub.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(), context=ctx(), member_account_id=a, points=3
                    )
                )
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(work, range(150)))
    assert server.db is not None
    result = verify_database(server.db)
    assert result, result.problems
    assert server.appender is not None and server.appender.batches < server.appender.commands
