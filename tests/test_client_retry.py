"""Retries of the client SDK against real ledgers, the hostile cases that
need a real process or a real limit (test_client_sdk.py has the rest):

- a ledger killed right after it applied an earn (its answer lost), then
  restarted on the same port and database: the client's retries carry
  the first idempotency key, so the journal holds exactly one entry;
- a frozen ledger (SIGSTOP): attempts end in DEADLINE_EXCEEDED while
  their requests pile up in the socket, then all of them (same key) reach
  the thawed ledger at once: one entry;
- the real rate limiter's RESOURCE_EXHAUSTED: the client waits the
  google.rpc.RetryInfo delay the server sent, not its own backoff;
- every other status is an answer: sent once on the wire, never retried,
  raised as its typed exception (INVALID_ARGUMENT with its field);
- the asyncio client keeps its key across a lost answer too;
- attempts and total time are bounded.

Faults come from a real gRPC proxy (tests/support/grpc_proxy.py) or from
signals to a real ``loyalty-ledger serve`` process; nothing is mocked."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2 as pb

from access.ratelimit import Rate
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from loyalty_client import (
    AlreadyExists,
    AsyncLedgerClient,
    FailedPrecondition,
    InvalidArgument,
    LedgerClient,
    LedgerError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from tests.support.grpc_proxy import Fault, GrpcProxy
from tests.support.process import ServeProcess, free_port

EARN = "/loyalty.ledger.v1.LedgerService/Earn"
# patient enough for a restart or a thaw, quick between attempts
PATIENT = RetryPolicy(max_attempts=60, initial_backoff=0.05, max_backoff=0.3, total_timeout=60)
QUICK = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, total_timeout=10)


def _entries(db_url: str, account: str) -> int:
    """The member's journal entries, read straight from the database."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT count(*) FROM account_entries WHERE account_id = :a"),
                {"a": account},
            ).scalar()
            return int(found or 0)
    finally:
        engine.dispose()


def _serve(tmp_path: Path, db_url: str, name: str, address: str | None = None) -> ServeProcess:
    """``loyalty-ledger serve`` in one process (no workers), development
    mode (plaintext, no credentials: this file is about retries)."""
    env = {"LOYALTY_LEDGER_WORKERS": "0", "LOYALTY_LEDGER_CHECKPOINT_INTERVAL": "0"}
    if address is not None:
        env["LOYALTY_LEDGER_LISTEN"] = address
    proc = ServeProcess(
        data_dir=tmp_path / "data", database_url=db_url, log_path=tmp_path / f"{name}.log", env=env
    )
    if address is not None:
        proc.address, proc.port = address, int(address.rsplit(":", 1)[1])
    proc.wait_serving()
    return proc


def _client(address: str, **kw: object) -> LedgerClient:
    kw.setdefault("retry", QUICK)
    return LedgerClient(address, insecure=True, channel_id="pos-test", **kw)  # type: ignore[arg-type]


@pytest.fixture
def dev_server(db_url: str, tmp_path: Path) -> Iterator[LedgerServer]:
    """An in-process ledger limited to 2 writes a second per principal."""
    srv = LedgerServer(
        ServerConfig(
            data_dir=tmp_path,
            database_url=db_url,
            listen="127.0.0.1:0",
            auth="none",
            plaintext=True,
            principal_rate=Rate(2, 1),
            checkpoint_interval=0,
        )
    )
    srv.start()
    yield srv
    srv.stop(grace=1)


def _proxy(target: str, *faults: Fault) -> GrpcProxy:
    proxy = GrpcProxy(target, faults=list(faults))
    proxy.port = proxy.start()  # type: ignore[attr-defined]
    return proxy


def test_a_ledger_killed_after_applying_is_retried_with_the_first_key(
    db_url: str, tmp_path: Path
) -> None:
    first = _serve(tmp_path, db_url, "first")
    servers = [first]
    # the earn reaches the ledger and is applied; its answer is lost, and the
    # ledger is killed before the client tries again
    proxy = _proxy(first.address, Fault(EARN, grpc.StatusCode.UNAVAILABLE, after=True))
    seen: list[str] = []
    restarted = threading.Event()

    def crash_and_restart(_method: str, attempt: int, err: LedgerError, _wait: float) -> None:
        seen.append(err.code.name)
        if attempt == 1:
            first.kill()

            def restart() -> None:
                time.sleep(0.5)  # a few attempts find nobody listening
                servers.append(_serve(tmp_path, db_url, "second", first.address))
                restarted.set()

            threading.Thread(target=restart, daemon=True).start()

    try:
        with _client(first.address) as direct:
            account = direct.open_account()
        with _client(
            f"127.0.0.1:{proxy.port}",  # type: ignore[attr-defined]
            retry=PATIENT,
            on_retry=crash_and_restart,
        ) as c:
            earned = c.earn(account, 25, external_id="ORD-TEST-0001")
        assert restarted.wait(30)
        assert earned.balance.points == 25
        assert len(seen) >= 2 and set(seen) == {"UNAVAILABLE"}  # the dead port too
        seq = earned.entry.sequence
        assert _entries(db_url, account) == 1  # applied before the kill, not again
        with _client(servers[-1].address) as direct:
            assert direct.get_balance(account).points == 25
            found = direct.call(direct.ledger.GetEntry, pb.GetEntryRequest(sequence=seq))
            assert found.entry.hash == earned.entry.hash  # the entry the lost answer named
    finally:
        proxy.stop()
        for proc in servers:
            proc.kill()


def test_a_frozen_ledger_times_out_then_applies_the_piled_up_retries_once(
    db_url: str, tmp_path: Path
) -> None:
    proc = _serve(tmp_path, db_url, "frozen")
    seen: list[str] = []
    try:
        with _client(proc.address) as c:
            account = c.open_account()
        os.kill(proc.proc.pid, signal.SIGSTOP)
        thaw = threading.Timer(1.5, os.kill, (proc.proc.pid, signal.SIGCONT))
        thaw.start()
        with _client(
            proc.address,
            timeout=0.3,  # each attempt's deadline
            retry=PATIENT,
            on_retry=lambda _m, _n, err, _w: seen.append(err.code.name),
        ) as c:
            earned = c.earn(account, 40)
        thaw.join()
        assert "DEADLINE_EXCEEDED" in seen and len(seen) >= 2
        assert earned.balance.points == 40
        assert _entries(db_url, account) == 1
    finally:
        os.kill(proc.proc.pid, signal.SIGCONT)
        proc.kill()


def test_the_rate_limiters_retry_info_is_waited_for(dev_server: LedgerServer) -> None:
    address = f"127.0.0.1:{dev_server.port}"
    waits: list[tuple[float | None, float]] = []
    with _client(address, on_retry=lambda _m, _n, e, w: waits.append((e.retry_delay, w))) as c:
        account = c.open_account()  # the one call the burst allows
        started = time.monotonic()
        assert c.earn(account, 3).balance.points == 3  # refused, waited, sent again
        elapsed = time.monotonic() - started
    assert waits, "the limiter should have refused the earn at least once"
    for delay, wait in waits:
        assert delay is not None and 0.1 < delay <= 0.5  # the server's RetryInfo
        assert wait == pytest.approx(delay)  # not QUICK's 10-50 ms backoff
    assert elapsed >= waits[0][1]
    # the bucket is empty again: a policy without that much time left gives
    # up at once, with the delay the server asked for
    impatient = RetryPolicy(
        max_attempts=5, initial_backoff=0.01, max_backoff=0.05, total_timeout=0.05
    )
    with _client(address, retry=impatient) as c:
        started = time.monotonic()
        with pytest.raises(ResourceExhausted) as refused:
            c.earn(account, 1)
        assert time.monotonic() - started < 0.3
    assert refused.value.retry_delay is not None and refused.value.retry_delay > 0


ANSWERS: list[tuple[grpc.StatusCode, type[LedgerError]]] = [
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
    (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
    (grpc.StatusCode.ABORTED, LedgerError),
    (grpc.StatusCode.INTERNAL, LedgerError),
    (grpc.StatusCode.DATA_LOSS, LedgerError),
    (grpc.StatusCode.UNKNOWN, LedgerError),
    (grpc.StatusCode.UNIMPLEMENTED, LedgerError),
]


def test_every_other_status_is_sent_once_and_raised_typed(server: LedgerServer) -> None:
    address = f"127.0.0.1:{server.port}"
    with _client(address) as direct:
        account = direct.open_account()
    for code, kind in ANSWERS:
        proxy = _proxy(address, Fault(EARN, code, after=False, times=5))
        try:
            with _client(f"127.0.0.1:{proxy.port}") as c:  # type: ignore[attr-defined]
                with pytest.raises(kind) as raised:
                    c.earn(account, 1)
                assert raised.value.code == code
            assert proxy.calls.count(EARN) == 1, code  # never retried
        finally:
            proxy.stop()
    # the real server's INVALID_ARGUMENT, on the wire once, with its field
    proxy = _proxy(address)
    try:
        with _client(f"127.0.0.1:{proxy.port}") as c:  # type: ignore[attr-defined]
            with pytest.raises(InvalidArgument) as bad:
                c.earn(account, 0)
            with pytest.raises(InvalidArgument) as unknown:
                c.earn("not-an-account", 5)
        assert proxy.calls.count(EARN) == 2 and proxy.forwarded.count(EARN) == 2
        assert [v.field for v in bad.value.violations] == ["points"]
        assert bad.value.violations[0].description  # the rule
        assert unknown.value.field == "member_account_id"
    finally:
        proxy.stop()
    with _client(address) as direct:
        assert direct.get_balance(account).points == 0


def test_the_asyncio_client_keeps_its_key_across_a_lost_answer(
    server: LedgerServer, db_url: str
) -> None:
    address = f"127.0.0.1:{server.port}"
    proxy = _proxy(address, Fault(EARN, grpc.StatusCode.DEADLINE_EXCEEDED, after=True, times=2))
    seen: list[str] = []

    async def run() -> tuple[str, int]:
        async with AsyncLedgerClient(address, insecure=True, channel_id="pos-test") as direct:
            account = await direct.open_account()
        async with AsyncLedgerClient(
            f"127.0.0.1:{proxy.port}",  # type: ignore[attr-defined]
            insecure=True,
            channel_id="pos-test",
            retry=QUICK,
            on_retry=lambda _m, _n, e, _w: seen.append(e.code.name),
        ) as c:
            earned = await c.earn(account, 9)
            with pytest.raises(InvalidArgument) as bad:  # details decode on aio errors too
                await c.earn(account, -1)
            assert bad.value.field == "points"
            return account, earned.balance.points

    try:
        account, points = asyncio.run(run())
    finally:
        proxy.stop()
    assert seen == ["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"]
    assert proxy.forwarded.count(EARN) == 4  # three sends of the earn, one bad one
    assert points == 9 and _entries(db_url, account) == 1


def test_separate_operations_get_separate_keys(server: LedgerServer, db_url: str) -> None:
    with _client(f"127.0.0.1:{server.port}") as c:
        account = c.open_account()
        one, two = c.earn(account, 5), c.earn(account, 5)  # two sales of the same amount
        assert one.entry.sequence != two.entry.sequence
        assert c.get_balance(account).points == 10
    assert _entries(db_url, account) == 2


def test_attempts_and_total_time_are_bounded() -> None:
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    calls: list[int] = []
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.2, total_timeout=1)
    with _client(nobody, retry=policy, on_retry=lambda _m, n, _e, _w: calls.append(n)) as c:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            c.get_balance("mbr_" + "a" * 26)
        elapsed = time.monotonic() - started
    assert 2 <= len(calls) < 1000 and elapsed < 1 + c.timeout
    with _client(nobody, retry=RetryPolicy(max_attempts=3, initial_backoff=0, max_backoff=0)) as c:
        calls.clear()
        c.on_retry = lambda _m, n, _e, _w: calls.append(n)
        with pytest.raises(Unavailable):
            c.get_balance("mbr_" + "a" * 26)
    assert calls == [1, 2]


def test_no_attempt_outlives_the_total_time(db_url: str, tmp_path: Path) -> None:
    proc = _serve(tmp_path, db_url, "stopped")
    try:
        with _client(proc.address) as c:
            account = c.open_account()
        os.kill(proc.proc.pid, signal.SIGSTOP)  # no answer will come
        policy = RetryPolicy(max_attempts=10, initial_backoff=0.01, max_backoff=0.05,
                             total_timeout=0.8)  # fmt: skip
        with _client(proc.address, timeout=30, retry=policy) as c:
            started = time.monotonic()
            with pytest.raises(LedgerError) as late:
                c.get_balance(account)
            elapsed = time.monotonic() - started
        assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert elapsed < 2  # not the 30 s of one attempt's own deadline
    finally:
        os.kill(proc.proc.pid, signal.SIGCONT)
        proc.kill()
