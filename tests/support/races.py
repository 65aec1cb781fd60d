"""The overdraft race both multi-process suites run: three members with
100 points each, 30 redeems of 7 for each at once, spread over several
stubs (server processes or worker connections)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from tests.conftest import ctx, key

MEMBERS, START, COST, TRIES = 3, 100, 7, 30


def race_redeems(stubs: list[ledger_pb2_grpc.LedgerServiceStub]) -> list[str]:
    """Fund the members, race the redeems; assert that exactly what the
    points allow succeeded and that every stub sees the same balance.
    Returns the members' account ids."""
    accounts = [
        stubs[i % len(stubs)]
        .OpenAccount(pb.OpenAccountRequest(idempotency_key=key(), context=ctx()))
        .member_account_id
        for i in range(MEMBERS)
    ]
    for i, account in enumerate(accounts):
        stubs[(i + 1) % len(stubs)].Earn(
            pb.EarnRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, points=START
            )
        )

    def redeem(i: int) -> tuple[str, grpc.StatusCode]:
        account = accounts[i % MEMBERS]
        try:
            stubs[i % len(stubs)].Redeem(
                pb.RedeemRequest(
                    idempotency_key=key("race"),
                    context=ctx(f"pos-{i % 2}", store_id=f"store-{i % 5}"),  # sealed details
                    member_account_id=account,
                    points=COST,
                )
            )
        except grpc.RpcError as err:
            return account, err.code()
        return account, grpc.StatusCode.OK

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(redeem, range(MEMBERS * TRIES)))
    for account in accounts:
        codes = [code for a, code in results if a == account]
        assert codes.count(grpc.StatusCode.OK) == START // COST
        assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) == TRIES - START // COST
        for stub in stubs:  # every process sees the same balance
            balance = stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance
            assert balance.points == START % COST
    return accounts


def raced_entries() -> int:
    """Journal entries the race leaves: the earns and the redeems that succeeded."""
    return MEMBERS + MEMBERS * (START // COST)
