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
from tests.test_workers import OWN_CONNECTION, _token

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


@pytest.mark.slow
def test_reserved_port_cannot_be_shared_by_another_program(tmp_path: Path) -> None:
    """docs/serving.md: the writer makes sure no other program listens on
    the port and holds it so it "cannot be taken". Any process of the same
    user that sets SO_REUSEPORT (every gRPC server does by default) can
    still bind and listen there, and the kernel hands it a share of the
    clients' connections."""
    server = ServeProcess(data_dir=tmp_path / "d", log_path=tmp_path / "s.log", env=ONE_WORKER)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stolen = 0
    try:
        server.wait_serving()
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            intruder.bind(("127.0.0.1", server.port))
            intruder.listen(64)
        except OSError:
            return  # refused: the port is really reserved
        intruder.settimeout(0.2)
        clients = []
        for _ in range(32):
            c = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            clients.append(c)
        while True:
            try:
                conn, _ = intruder.accept()
            except TimeoutError:
                break
            stolen += 1
            conn.close()
        for c in clients:
            c.close()
    finally:
        intruder.close()
        server.kill()
    assert stolen == 0, f"another program took {stolen} of 32 connections on the server's port"


def test_shared_member_limit_cannot_be_reset_by_colliding_keys() -> None:
    """The per-member limit must hold whichever channel calls. Digests are
    unkeyed BLAKE2b, so anyone can find member ids whose home slot is the
    victim's; a refused take does not refresh a bucket's time, so the
    throttled member is the oldest of its window and the first one evicted:
    a handful of calls for other ids gives the victim a full burst again."""
    buckets = SharedBuckets.create()
    now = [1000.0]
    limiter = RateLimiter(
        Rate(0.001, 3), scope="member_account_id", clock=lambda: now[0], shared=buckets
    )
    victim = "mbr_" + "v" * 26
    home = SharedBuckets.digest("member_account_id", victim) % SLOTS
    decoys: list[str] = []
    n = 0
    while len(decoys) < 8:  # about 2 million hashes: a few seconds
        n += 1
        candidate = "mbr_" + base64.b32encode(n.to_bytes(16, "big")).decode().lower()[:26]
        if SharedBuckets.digest("member_account_id", candidate) % SLOTS == home:
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
        for _ in range(10):
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
