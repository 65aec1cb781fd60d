"""``loyalty-ledger serve`` as a newcomer runs it: a real process on a fresh
data directory, health check and Earn within seconds, a clean SIGTERM."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from tests.conftest import ctx, key
from tests.support.process import ServeProcess, cli_path

pytestmark = pytest.mark.slow


def test_fresh_data_dir_serves_health_and_earn_within_seconds(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    server = ServeProcess(data_dir=data, log_path=tmp_path / "serve.log")
    try:
        seconds = server.wait_serving(timeout=20)
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="loyalty.ledger.v1.LedgerService")
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            account = stub.OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
            ).member_account_id
            resp = stub.Earn(
                pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=5
                )
            )
            assert resp.balance.points == 5
        assert seconds < 10
        assert (data / "ledger.db").exists()
        assert server.terminate() == 0
    finally:
        server.kill()

    lines = [
        json.loads(line)
        for line in (tmp_path / "serve.log").read_text().splitlines()
        if line.startswith("{")
    ]
    rpc_lines = [entry for entry in lines if entry.get("event") == "rpc"]
    assert {e["method"] for e in rpc_lines} >= {"/loyalty.ledger.v1.LedgerService/Earn"}
    for entry in rpc_lines:
        assert {"request_id", "method", "status", "duration_ms", "timestamp"} <= entry.keys()
    assert any(e.get("event") == "stopped" for e in lines)

    out = subprocess.run(
        [cli_path(), "verify", "--data-dir", str(data)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok: 1 entries" in out.stdout


def test_sigterm_finishes_in_flight_calls_and_loses_nothing(tmp_path: Path) -> None:
    """Acknowledged earns are all in the journal; a call cut off by the
    shutdown is retried with its key after a restart and counts exactly once."""
    data = tmp_path / "data"
    # eight threads hammer one member on purpose: lift the per-member limit
    unlimited = {"LOYALTY_LEDGER_MEMBER_RATE": "0"}
    server = ServeProcess(data_dir=data, log_path=tmp_path / "serve.log", env=unlimited)
    acknowledged = 0
    cut_off: list[pb.EarnRequest] = []
    unexpected: list[str] = []
    lock = threading.Lock()
    try:
        server.wait_serving()
        channel = grpc.insecure_channel(server.address)
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        account = stub.OpenAccount(
            pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
        ).member_account_id
        stop = time.monotonic() + 3

        def hammer() -> None:
            nonlocal acknowledged
            while time.monotonic() < stop:
                request = pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=1
                )
                try:
                    stub.Earn(request, timeout=10)
                except grpc.RpcError as err:
                    with lock:
                        cut_off.append(request)
                        if err.code() not in (
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.CANCELLED,
                        ):
                            unexpected.append(f"{err.code()}: {err.details()}")
                    return
                with lock:
                    acknowledged += 1

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.7)
        assert server.terminate() == 0
        for t in threads:
            t.join()
        channel.close()
    finally:
        server.kill()
    assert acknowledged > 0
    assert unexpected == []

    restarted = ServeProcess(data_dir=data, log_path=tmp_path / "serve2.log", env=unlimited)
    try:
        restarted.wait_serving()
        with grpc.insecure_channel(restarted.address) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            for request in cut_off:  # a client retries what it did not hear back about
                stub.Earn(request)
            balance = stub.GetBalance(
                pb.GetBalanceRequest(member_account_id=account)
            ).balance.points
        assert restarted.terminate() == 0
    finally:
        restarted.kill()
    assert balance == acknowledged + len(cut_off)
    out = subprocess.run(
        [cli_path(), "verify", "--data-dir", str(data)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout
    assert f"ok: {acknowledged + len(cut_off)} entries" in out.stdout
