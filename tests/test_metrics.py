"""Metrics (issue 14, item 4): a real ``loyalty-ledger serve`` with
``--metrics-listen``, scraped over HTTP and parsed with prometheus-client's
own parser: calls by method and status code, latency, refusals by abuse
limits and data detectors, appender batch sizes and commit latency, log
sizes, checkpoint age, readiness; with several workers, every worker's
calls summed by the writer, also after a worker is killed."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ctx, key
from tests.support.process import ServeProcess, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.2)


def _serve(tmp_path: Path, workers: str) -> tuple[ServeProcess, int]:
    metrics_port = free_port()
    proc = ServeProcess(
        data_dir=tmp_path / "data",
        log_path=tmp_path / "serve.log",
        env={
            "LOYALTY_LEDGER_WORKERS": workers,
            "LOYALTY_LEDGER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
            "LOYALTY_LEDGER_MEMBER_RATE": "0.01:3",  # the 4th mutating call on a member: refused
            "LOYALTY_LEDGER_CHECKPOINT_INTERVAL": "1",
        },
    )
    proc.wait_serving()
    return proc, metrics_port


def _calls(address: str, earns: int) -> str:
    """Open an account, ``earns`` earns, then calls that are refused: a
    rate-limited earn, personal data in metadata, a malformed account."""
    with grpc.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        accounts = []
        for _ in range(earns):
            account = stub.OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key("open"), context=ctx())
            ).member_account_id
            stub.Earn(
                pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=5
                )
            )
            accounts.append(account)
        refused = {}
        for request in [
            pb.EarnRequest(  # a fake phone number where an order id belongs
                idempotency_key=key(), context=ctx(external="+8613800138000"),
                member_account_id=accounts[0], points=5,
            ),
            pb.EarnRequest(
                idempotency_key=key(), context=ctx(), member_account_id="nope", points=5
            ),
        ]:  # fmt: skip
            with pytest.raises(grpc.RpcError) as err:
                stub.Earn(request)
            refused[err.value.code()] = refused.get(err.value.code(), 0) + 1
        codes = []
        for _ in range(6):  # the same member, over its burst
            try:
                stub.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(), context=ctx(), member_account_id=accounts[0],
                        points=1,
                    )
                )  # fmt: skip
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        assert refused == {grpc.StatusCode.INVALID_ARGUMENT: 2}
        return accounts[0]


def test_single_process_metrics_count_calls_refusals_batches_and_logs(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path, "0")
    try:
        _calls(proc.address, earns=5)
        s = _scrape(port)
        earn = "/loyalty.ledger.v1.LedgerService/Earn"
        opened = "/loyalty.ledger.v1.LedgerService/OpenAccount"
        assert _value(s, "loyalty_rpc_requests_total", method=opened, code="OK") == 5
        ok = _value(s, "loyalty_rpc_requests_total", method=earn, code="OK")
        limited = _value(s, "loyalty_rpc_requests_total", method=earn, code="RESOURCE_EXHAUSTED")
        invalid = _value(s, "loyalty_rpc_requests_total", method=earn, code="INVALID_ARGUMENT")
        assert invalid == 2 and limited >= 1 and ok + limited == 5 + 6
        assert _value(s, "loyalty_rpc_duration_seconds_count", method=earn) == ok + limited + 2
        assert _value(s, "loyalty_refusals_total", reason="rate_limited") == limited
        assert _value(s, "loyalty_refusals_total", reason="personal_data") == 1
        # every acknowledged write was in some group commit: 5 opens + ok earns at least
        assert _value(s, "loyalty_appender_batch_size_sum") >= 5 + ok
        assert _value(s, "loyalty_appender_commit_seconds_count") >= 1
        # sampled every 2 s by the writer: the journal holds every acknowledged write
        _until(
            lambda: _value(_scrape(port), "loyalty_log_size", log="journal") == ok
        )  # earns; opens are not entries
        s = _scrape(port)
        assert _value(s, "loyalty_log_size", log="access") >= 1
        _until(lambda: _value(_scrape(port), "loyalty_ready") == 1)
        _until(
            lambda: 0 <= _value(_scrape(port), "loyalty_checkpoint_age_seconds", log="journal") < 30
        )
        assert ("loyalty_appender_queue_depth", ()) in s
    finally:
        assert proc.terminate() == 0


def test_workers_metrics_are_summed_by_the_writer_and_survive_a_killed_worker(
    tmp_path: Path,
) -> None:
    proc, port = _serve(tmp_path, "2")
    files = Path(tempfile.gettempdir()).glob(f"loyalty-metrics-{proc.proc.pid}-*")
    assert len(list(files)) == 1  # the workers' value files, while serving
    try:
        opened = "/loyalty.ledger.v1.LedgerService/OpenAccount"
        for _ in range(3):  # new connections spread over both workers' SO_REUSEPORT sockets
            _calls(proc.address, earns=4)
        _until(
            lambda: (
                _value(_scrape(port), "loyalty_rpc_requests_total", method=opened, code="OK") == 12
            )
        )
        s = _scrape(port)
        assert _value(s, "loyalty_refusals_total", reason="personal_data") == 3
        pids = proc.worker_pids()
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)  # its counts were written to its file: they stay
        _until(lambda: len(proc.worker_pids()) == 2 and proc.worker_pids() != pids)
        proc.wait_serving()
        _calls(proc.address, earns=2)
        _until(
            lambda: (
                _value(_scrape(port), "loyalty_rpc_requests_total", method=opened, code="OK") == 14
            )
        )
        s = _scrape(port)
        assert _value(s, "loyalty_refusals_total", reason="personal_data") == 4
        _until(
            lambda: _value(_scrape(port), "loyalty_log_size", log="journal") >= 14
        )  # the earns of 14 opened accounts
    finally:
        assert proc.terminate() == 0
    files = Path(tempfile.gettempdir()).glob(f"loyalty-metrics-{proc.proc.pid}-*")
    assert list(files) == []  # removed at shutdown
