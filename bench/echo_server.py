"""Bare gRPC echo server: the ceiling the ledger's Earn is compared with.

It is built like ledger/server.py (a ``grpc.aio`` server with the same
channel options and concurrency limit) and implements ``LedgerService.Earn`` by returning one canned
``EarnResponse`` of realistic size: an Entry with one posting, a timestamp,
two 32-byte hashes, and a Balance. Requests and responses are the ledger's
own message types, so (de)serialization costs the same as on the ledger;
what is left out is the ledger's work: interceptor and logging, validation,
the appender hand-off and the durable commit.

``GetBalance`` likewise returns a canned ``GetBalanceResponse``.

Two forms, so the ratio is taken against the faster one: ``grpc.aio``
(the default) and the classic thread-pool server (``--threads N``). With
``--tls CERT KEY`` it listens with TLS, as the ledger's secure default does
(it checks no token: a bare echo is the ceiling).

It also serves the standard health service. It binds 127.0.0.1 port 0,
prints ``PORT <n>`` on stdout once it is serving, and stops on SIGTERM,
SIGINT, or when its stdin reaches end of file (its parent went away).

Run by the benchmarks; by hand: ``python bench/echo_server.py [--threads 16] [--tls C K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.config import ServerConfig
from ledger.server import new_grpc_server

LEDGER_SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


def canned_response() -> pb.EarnResponse:
    """An EarnResponse shaped like the ledger's answer to a bench Earn."""
    account = "mbr_" + "abcdefghijklmnopqrstuvwxyz"  # 26 base32 characters, like a real id
    sequence = 1_234_567
    return pb.EarnResponse(
        entry=pb.Entry(
            sequence=sequence,
            time=Timestamp(seconds=1_764_000_000, nanos=123_456_000),
            kind=pb.ENTRY_KIND_EARN,
            postings=[pb.Posting(from_account="program:issued", to_account=account, points=10)],
            channel_id="bench-pos",
            prev_hash=os.urandom(32),
            hash=os.urandom(32),
        ),
        balance=pb.Balance(member_account_id=account, points=12_340, as_of_sequence=sequence),
    )


def canned_balance() -> pb.GetBalanceResponse:
    account = "mbr_" + "abcdefghijklmnopqrstuvwxyz"
    return pb.GetBalanceResponse(
        balance=pb.Balance(
            member_account_id=account, points=12_340, available=12_340, as_of_sequence=1_234_567
        )
    )


class EchoLedger(ledger_pb2_grpc.LedgerServiceServicer):
    """Answers every Earn and GetBalance with a prepared response; nothing else."""

    def __init__(self) -> None:
        self._response = canned_response()
        self._balance = canned_balance()

    async def Earn(self, request: pb.EarnRequest, context: object) -> pb.EarnResponse:
        return self._response

    async def GetBalance(self, request: pb.GetBalanceRequest, context: object) -> object:
        return self._balance


class ThreadedEchoLedger(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self) -> None:
        self._response = canned_response()
        self._balance = canned_balance()

    def Earn(self, request: pb.EarnRequest, context: object) -> pb.EarnResponse:
        return self._response

    def GetBalance(self, request: pb.GetBalanceRequest, context: object) -> object:
        return self._balance


def build_server(config: ServerConfig) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    """The grpc.aio server of ledger/server.py, minus interceptor and reflection."""
    server = new_grpc_server(config)
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(EchoLedger(), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


def _listen(server: grpc.Server | grpc.aio.Server, tls: list[Path] | None) -> int:
    if tls is None:
        return server.add_insecure_port("127.0.0.1:0")
    cert, key = tls
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    return server.add_secure_port("127.0.0.1:0", credentials)


def serve_threaded(threads: int, tls: list[Path] | None) -> int:
    """The classic grpcio server: a thread pool of ``threads`` handlers."""
    config = ServerConfig()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads),
        options=[("grpc.max_receive_message_length", config.max_message_bytes)],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(ThreadedEchoLedger(), server)
    from grpc_health.v1.health import HealthServicer

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = _listen(server, tls)
    if port == 0:
        print("cannot listen on 127.0.0.1", file=sys.stderr)
        return 1
    server.start()
    for service in ("", LEDGER_SERVICE):
        health.set(service, health_pb2.HealthCheckResponse.SERVING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop.set()), daemon=True).start()
    print(f"PORT {port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()
    return 0


async def serve(tls: list[Path] | None = None) -> int:
    server, health_servicer = build_server(ServerConfig())
    port = _listen(server, tls)
    if port == 0:
        print("cannot listen on 127.0.0.1", file=sys.stderr)
        return 1
    await server.start()
    for service in ("", LEDGER_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # stop when stdin reaches end of file (the parent went away)
    loop.run_in_executor(None, sys.stdin.buffer.read).add_done_callback(lambda _: stop.set())
    print(f"PORT {port}", flush=True)
    await stop.wait()
    await server.stop(1)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="bare gRPC echo of Earn and GetBalance")
    parser.add_argument("--threads", type=int, default=0, help="thread-pool server; 0: grpc.aio")
    parser.add_argument("--tls", nargs=2, type=Path, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    if args.threads > 0:
        return serve_threaded(args.threads, args.tls)
    return asyncio.run(serve(args.tls))


if __name__ == "__main__":
    sys.exit(main())
