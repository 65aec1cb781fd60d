"""Readiness (issue 14, item 2): the health service is NOT_SERVING while the
database cannot be written and SERVING again by itself once it can; and a
PostgreSQL stop and start under load loses no acknowledged request and
applies none twice (item 7). A real server, a real SQLite lock holder, a
real PostgreSQL cluster of its own that the test stops and starts."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.config import Limits, ServerConfig
from ledger.server import LedgerServer
from ledger.storage.database import open_database
from ledger.verify import verify_database
from tests.conftest import ctx, key, open_account
from tests.support.postgres import PostgresCluster, find_pg_bin

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _server(tmp_path: Path, url: str) -> LedgerServer:
    config = ServerConfig(
        data_dir=tmp_path,
        database_url=url,
        listen="127.0.0.1:0",
        limits=Limits(max_points_per_entry=100_000),
        auth="none",
        plaintext=True,
    )
    server = LedgerServer(config)
    server.start()
    return server


def _status(channel: grpc.Channel, service: str = "") -> int:
    health = health_pb2_grpc.HealthStub(channel)
    try:
        return int(health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status)
    except grpc.RpcError:
        return -1


def _until(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[LedgerServer]:
    server = _server(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
    yield server
    server.stop(grace=1)


def test_sqlite_locked_by_someone_else_is_not_serving_until_released(
    sqlite_server: LedgerServer, tmp_path: Path
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sqlite_server.port}") as channel:
        assert _status(channel) == SERVING
        service = "loyalty.ledger.v1.LedgerService"
        assert _status(channel, service) == SERVING
        holder = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # a stray maintenance job holds the write lock
        try:
            _until(lambda: _status(channel) == NOT_SERVING, 10)
            assert _status(channel, service) == NOT_SERVING
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        _until(lambda: _status(channel) == SERVING, 5)
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        account = open_account(stub)  # and it works again
        assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 0


@pytest.mark.postgres
def test_postgresql_stop_and_start_under_load(tmp_path: Path) -> None:
    """Earns keep coming (each retried with its own idempotency key until
    acknowledged) while PostgreSQL is stopped and started: health goes
    NOT_SERVING and back, every acknowledged earn is in the journal exactly
    once, and the journal verifies."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL binaries (initdb) not found: `make test` installs them")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    server: LedgerServer | None = None
    try:
        url = cluster.create_database()
        server = _server(tmp_path, url)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        account = open_account(stub)
        acknowledged: list[int] = []
        refused: set[str] = set()
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                idem = key(f"load{n}")
                while True:  # the SDK's rule: retry UNAVAILABLE with the same key
                    try:
                        stub.Earn(
                            pb.EarnRequest(
                                idempotency_key=idem,
                                context=ctx(),
                                member_account_id=account,
                                points=1,
                            ),
                            timeout=5,
                        )
                        acknowledged.append(n)
                        break
                    except grpc.RpcError as err:
                        refused.add(err.code().name)
                        if err.code() not in (
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                        ):
                            raise
                        time.sleep(0.1)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        _until(lambda: len(acknowledged) >= 20, 30)
        cluster.halt()
        down = _until(lambda: _status(channel) == NOT_SERVING, 10)
        before = len(acknowledged)
        time.sleep(1.5)
        assert len(acknowledged) <= before + 1  # nothing is acknowledged while it is down
        cluster.resume()
        up = _until(lambda: _status(channel) == SERVING, 15)
        _until(lambda: len(acknowledged) >= before + 20, 30)  # and the load goes on
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert "UNAVAILABLE" in refused
        points = stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points
        assert points == len(acknowledged)  # each acknowledged earn once, nothing else
        channel.close()
        server.stop(grace=1)
        server = None
        db = open_database(url)
        try:
            result = verify_database(db)
        finally:
            db.dispose()
        assert result, result.problems
        assert result.entries == len(acknowledged)
        print(f"not serving after {down:.2f} s, serving again {up:.2f} s after the restart")
    finally:
        if server is not None:
            server.stop(grace=1)
        cluster.stop()
