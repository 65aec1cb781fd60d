"""Shared fixtures: a real gRPC server on loopback over a real database.

Every test that takes ``db_url`` (directly or through ``server``/``stub``)
runs twice: once on SQLite, once on a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.config import Limits, ServerConfig
from ledger.server import LedgerServer
from ledger.storage.journal_reads import JournalReads, read_head
from tests.support.postgres import PostgresCluster, find_pg_bin

MAX_POINTS = 100_000


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL binaries (initdb) not found: `make test` installs them")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LedgerServer]:
    config = ServerConfig(
        data_dir=tmp_path,
        database_url=db_url,
        listen="127.0.0.1:0",
        limits=Limits(max_points_per_entry=MAX_POINTS),
        auth="none",  # development mode: the access tests start their own servers
        plaintext=True,
    )
    srv = LedgerServer(config)
    srv.start()
    yield srv
    srv.stop(grace=2)


@pytest.fixture
def channel(server: LedgerServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> ledger_pb2_grpc.LedgerServiceStub:
    return ledger_pb2_grpc.LedgerServiceStub(channel)


_keys = itertools.count(1)


def key(prefix: str = "key") -> str:
    """A fresh idempotency key."""
    return f"{prefix}-{next(_keys):08d}"


def ctx(channel_id: str = "pos-test", store_id: str = "", external: str = "") -> pb.ChannelContext:
    return pb.ChannelContext(
        channel_id=channel_id, store_id=store_id, external_transaction_id=external
    )


def open_account(stub: ledger_pb2_grpc.LedgerServiceStub, channel_id: str = "pos-test") -> str:
    return stub.OpenAccount(
        pb.OpenAccountRequest(idempotency_key=key("open"), context=ctx(channel_id))
    ).member_account_id


def earn(
    stub: ledger_pb2_grpc.LedgerServiceStub, account: str, points: int, **kw: object
) -> pb.EarnResponse:
    return stub.Earn(
        pb.EarnRequest(
            idempotency_key=key("earn"),
            context=ctx(),
            member_account_id=account,
            points=points,
            **kw,
        )
    )


def redeem(stub: ledger_pb2_grpc.LedgerServiceStub, account: str, points: int) -> pb.RedeemResponse:
    return stub.Redeem(
        pb.RedeemRequest(
            idempotency_key=key("redeem"), context=ctx(), member_account_id=account, points=points
        )
    )


def entry_owner(stub: ledger_pb2_grpc.LedgerServiceStub, sequence: int) -> str:
    """The member an entry belongs to, read over the wire (a Reverse names it)."""
    from audit.accounts import owner_of
    from audit.entry_format import is_member_account

    entry = stub.GetEntry(pb.GetEntryRequest(sequence=sequence)).entry
    return next(
        owner_of(a)
        for p in entry.postings
        for a in (p.from_account, p.to_account)
        if is_member_account(a)
    )


def head_sequence(server: LedgerServer) -> int:
    """The journal's last sequence number, read straight from the database."""
    assert server.db is not None
    with JournalReads(server.db.reader).snapshot() as conn:
        return read_head(conn).sequence
