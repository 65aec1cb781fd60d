"""Several server processes on one database keep one valid chain and never
overdraw, even when their redeems race for the same member: on PostgreSQL
(head row lock) and on one SQLite file (BEGIN IMMEDIATE). Each appender
caches balances only while the head is its own, so the other process's
writes must invalidate that cache, or this test overdraws."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.storage.database import open_database
from ledger.verify import verify_database
from tests.conftest import ctx, key
from tests.support.postgres import PostgresCluster
from tests.support.process import ServeProcess
from tests.support.races import race_redeems, raced_entries

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_two_processes_one_chain_no_overdraft(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    # every process of one deployment shares the keyring (a file here; a KMS in production)
    keyring = {"LOYALTY_LEDGER_KEYRING": str(tmp_path / "keyring.json")}
    servers = [
        ServeProcess(
            data_dir=tmp_path / f"d{i}",
            database_url=url,
            log_path=tmp_path / f"s{i}.log",
            env=keyring,
        )
        for i in range(2)
    ]
    channels: list[grpc.Channel] = []
    try:
        for s in servers:
            s.wait_serving()
        channels = [grpc.insecure_channel(s.address) for s in servers]
        stubs = [ledger_pb2_grpc.LedgerServiceStub(c) for c in channels]
        race_redeems(stubs)
        for s in servers:
            assert s.terminate() == 0
    finally:
        for c in channels:
            c.close()
        for s in servers:
            s.kill()

    db = open_database(url)
    try:
        result = verify_database(db)
    finally:
        db.dispose()
    assert result, result.problems
    assert result.entries == raced_entries()


def test_erasure_on_one_process_closes_the_account_on_the_other(tmp_path: Path) -> None:
    """A zero-balance erasure appends no entry; the head's epoch still tells
    the other process that its cached view of the account is stale."""
    from loyalty.members.v1 import members_pb2 as mpb
    from loyalty.members.v1 import members_pb2_grpc

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    keyring = {"LOYALTY_LEDGER_KEYRING": str(tmp_path / "keyring.json")}
    servers = [
        ServeProcess(
            data_dir=tmp_path / f"d{i}",
            database_url=url,
            log_path=tmp_path / f"s{i}.log",
            env=keyring,
        )
        for i in range(2)
    ]
    try:
        for s in servers:
            s.wait_serving()
        with (
            grpc.insecure_channel(servers[0].address) as a,
            grpc.insecure_channel(servers[1].address) as b,
        ):
            ledger_b = ledger_pb2_grpc.LedgerServiceStub(b)
            account = (
                members_pb2_grpc.MemberServiceStub(a)
                .Enroll(
                    mpb.EnrollRequest(
                        idempotency_key=key(),
                        context=ctx(),
                        profile=mpb.Profile(email="epoch@example.invalid"),
                    )
                )
                .member_account_id
            )
            for request in (
                pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=5
                ),
                pb.RedeemRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=5
                ),
            ):
                getattr(ledger_b, type(request).__name__.removesuffix("Request"))(request)
            erased = members_pb2_grpc.MemberServiceStub(a).EraseMember(
                mpb.EraseMemberRequest(
                    idempotency_key=key(),
                    member_account_id=account,
                    reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
                )
            )
            assert erased.forfeited_points == 0 and erased.erasure_sequence == 0
            with pytest.raises(grpc.RpcError) as caught:
                ledger_b.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(),
                        context=ctx(store_id="store-7"),
                        member_account_id=account,
                        points=7,
                    )
                )
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        for s in servers:
            s.kill()


def test_a_server_with_another_keyring_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = ServeProcess(data_dir=tmp_path / "d0", database_url=url, log_path=tmp_path / "s0.log")
    try:
        first.wait_serving()
        with grpc.insecure_channel(first.address) as channel:
            ledger_pb2_grpc.LedgerServiceStub(channel).OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
            )
    finally:
        first.terminate()
    second = ServeProcess(data_dir=tmp_path / "d1", database_url=url, log_path=tmp_path / "s1.log")
    assert second.proc.wait(60) == 2
    second.kill()
    assert (
        "every server of one database must use the same keyring"
        in (tmp_path / "s1.log").read_text()
    )
