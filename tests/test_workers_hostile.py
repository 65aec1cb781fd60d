"""Hostile checks of ``serve --workers N`` (review findings).

Each test states a guarantee of docs/serving.md or of the code's own
docstrings and tries to break it."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.access.v1 import access_pb2 as apb
from loyalty.access.v1 import access_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from access.ratelimit import Rate, RateLimitedError, RateLimiter
from access.shared_buckets import SLOTS, SharedBuckets
from ledger.validation import MEMBER_ACCOUNT_RE
from tests.support.process import ServeProcess
from tests.test_workers import OWN_CONNECTION, _token, _wait_for

ONE_WORKER = {"LOYALTY_LEDGER_WORKERS": "1"}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _reap(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _healthy(address: str, timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(address, options=OWN_CONNECTION) as channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.slow
def test_grant_while_break_glass_checks_run_does_not_deadlock_the_worker(tmp_path: Path) -> None:
    """BreakGlass.grant runs in a thread and holds BreakGlass._lock while
    its start event is recorded; in a worker that record waits for the
    event loop (RemoteAppender._blocking). A call whose admission asks
    for the principal's grant (Gate._grant -> active_grant) takes the same
    lock on the event loop: the loop blocks, the record is never sent,
    and the worker hangs for good."""
    data = tmp_path / "d"
    env = {**ONE_WORKER, "LOYALTY_LEDGER_AUTH": "tokens"}
    server = ServeProcess(data_dir=data, log_path=tmp_path / "s.log", env=env)
    stop = threading.Event()
    failures: list[str] = []
    workers: list[int] = []
    try:
        server.wait_serving()
        workers = server.worker_pids()
        admin, _ = _token(data, "admin-7", "admin")
        analyst, _ = _token(data, "analyst-9", "analyst")

        def spam() -> None:
            with grpc.insecure_channel(server.address, options=OWN_CONNECTION) as channel:
                stub = members_pb2_grpc.MemberServiceStub(channel)
                read = mpb.GetMemberRequest(
                    member_account_id="mbr_" + "a" * 26, purpose="break_glass"
                )
                while not stop.is_set():
                    try:
                        stub.GetMember(
                            read, metadata=[("authorization", f"Bearer {analyst}")], timeout=5
                        )
                    except grpc.RpcError as err:
                        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                            failures.append("GetMember: deadline exceeded")
                            return

        threads = [threading.Thread(target=spam) for _ in range(4)]
        for t in threads:
            t.start()
        with grpc.insecure_channel(server.address, options=OWN_CONNECTION) as channel:
            access = access_pb2_grpc.AccessServiceStub(channel)
            deadline = time.monotonic() + 20
            i = 0
            while time.monotonic() < deadline and not failures:
                i += 1
                try:
                    access.GrantBreakGlass(
                        apb.GrantBreakGlassRequest(
                            grantee=f"ghost-{i}",
                            reason="incident T-78 deadlock probe",
                            duration_seconds=60,
                        ),
                        metadata=[("authorization", f"Bearer {admin}")],
                        timeout=5,
                    )
                except grpc.RpcError as err:
                    failures.append(f"GrantBreakGlass #{i}: {err.code()}")
        stop.set()
        for t in threads:
            t.join(15)
        healthy = _healthy(server.address)
    finally:
        stop.set()
        server.kill()
        _reap(workers)  # a deadlocked worker outlives its writer
    assert not failures, failures
    assert healthy, "the worker no longer answers a health check"


def test_shared_member_limit_cannot_be_reset_by_colliding_keys() -> None:
    """The per-member limit must hold whichever channel calls. Digests are
    keyed with a secret of the table, so ids that collide with a victim's
    cannot be found from outside; and even given them (this test uses the
    table's own digest, the worst case), a throttled member is the last
    bucket taken over: a handful of calls for other ids in its slots does
    not give it a full burst again."""
    buckets = SharedBuckets.create()
    now = [1000.0]
    limiter = RateLimiter(
        Rate(0.001, 3), scope="member_account_id", clock=lambda: now[0], shared=buckets
    )
    victim = "mbr_" + "v" * 26
    home = buckets.digest("member_account_id", victim) % SLOTS
    decoys: list[str] = []
    n = 0
    while len(decoys) < 8:  # about 2 million hashes: a few seconds
        n += 1
        candidate = "mbr_" + base64.b32encode(n.to_bytes(16, "big")).decode().lower()[:26]
        if buckets.digest("member_account_id", candidate) % SLOTS == home:
            decoys.append(candidate)
    for _ in range(3):
        limiter.take(victim)
    with pytest.raises(RateLimitedError):
        limiter.take(victim)
    now[0] += 1.0
    assert all(MEMBER_ACCOUNT_RE.fullmatch(d) for d in decoys)  # ids a request may name
    for decoy in decoys:
        limiter.take(decoy)
    with pytest.raises(RateLimitedError):  # fails: the victim has a full bucket again
        limiter.take(victim)


@pytest.mark.slow
def test_a_worker_exits_when_two_stop_signals_arrive_together(tmp_path: Path) -> None:
    """run_worker's handlers call ``stop.set()`` from the signal handler.
    A second signal that lands while the first handler is inside
    ``Event.set`` (holding the Event's non-reentrant lock) runs the handler
    again in the same thread: it blocks on that lock for ever, and so does
    ``writer_gone`` on the loop thread. Ctrl-C or ``systemctl stop``
    signal every process of the group while the writer sends its own
    SIGTERM: the worker never exits and keeps its listening socket."""
    server = ServeProcess(data_dir=tmp_path / "d", log_path=tmp_path / "s.log", env=ONE_WORKER)
    victims: list[int] = []
    try:
        server.wait_serving()
        for _ in range(15):
            assert _wait_for(lambda: len(server.worker_pids()) == 1)
            (worker,) = server.worker_pids()
            victims.append(worker)
            for _ in range(300):  # SIGINT and SIGTERM, as a group stop delivers them
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGINT)
                    os.kill(worker, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _alive(worker) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(worker):
                break
            # the writer starts a new worker; wait for it
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                pids = server.worker_pids()
                if pids and pids[0] != worker and _healthy(server.address, 1.0):
                    break
                time.sleep(0.2)
        stuck = [pid for pid in victims if _alive(pid)]
    finally:
        server.kill()
        _reap(victims)
    assert not stuck, f"worker {stuck} still alive 20 s after SIGINT+SIGTERM"


def test_link_closed_by_the_supervisor_before_the_loop_saw_eof_breaks_the_respawn() -> None:
    """When a worker dies, the supervisor closes its link and makes a new
    socketpair for the replacement. Closed from the supervisor thread while
    the loop had not yet handled the EOF (busy with group-commit
    deliveries), the fd left epoll behind the selector's back and the new
    socket, with the same fd number, was never polled. The supervisor now
    closes it on the loop (``WriterEnd.aclose``), as this test does."""
    import asyncio
    import pickle
    import struct

    from ledger.service.writer_link import READY, WriterEnd

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    try:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        old = WriterEnd(None, "worker-0")  # type: ignore[arg-type]
        on_loop(old.serve(mine))
        loop.call_soon_threadsafe(time.sleep, 0.5)  # the loop is busy for a moment
        time.sleep(0.05)
        theirs.close()  # the worker dies
        on_loop(old.aclose())  # watch(): the writer's remove_worker
        new_mine, new_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ready = threading.Event()
        new = WriterEnd(None, "worker-0")  # type: ignore[arg-type]
        new.on_ready = ready.set
        on_loop(new.serve(new_mine))
        frame = pickle.dumps([(READY, None, None)])
        new_theirs.sendall(struct.pack(">I", len(frame)) + frame)
        arrived = ready.wait(3)
        new_theirs.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert arrived, "the replacement worker's link is never read"
