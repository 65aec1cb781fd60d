"""Bare gRPC echo server: the ceiling the ledger's Earn is compared with.

It is built like ledger/server.py (a ``grpc.server`` on a ThreadPoolExecutor
with the ledger's worker count, the same channel options and concurrency
limit) and implements ``LedgerService.Earn`` by returning one canned
``EarnResponse`` of realistic size: an Entry with one posting, a timestamp,
two 32-byte hashes, and a Balance. Requests and responses are the ledger's
own message types, so (de)serialization costs the same as on the ledger;
what is left out is the ledger's work: interceptor and logging, validation,
the appender hand-off and the durable commit.

The worker count follows LOYALTY_LEDGER_WORKERS as the ledger's CLI does,
so both pools stay the same size. It also serves the standard health
service. It binds 127.0.0.1 port 0, prints ``PORT <n>`` on stdout once it
is serving, and stops on SIGTERM, SIGINT, or when its stdin reaches end of
file (its parent went away).

Run by bench/bench_earn.py; by hand: ``python bench/echo_server.py``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.config import ServerConfig, env

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


class EchoLedger(ledger_pb2_grpc.LedgerServiceServicer):
    """Answers every Earn with the same prepared response; nothing else."""

    def __init__(self) -> None:
        self._response = canned_response()

    def Earn(self, request: pb.EarnRequest, context: grpc.ServicerContext) -> pb.EarnResponse:
        return self._response


def build_server(config: ServerConfig) -> tuple[grpc.Server, health.HealthServicer]:
    """The grpc.server of ledger/server.py, minus interceptor and reflection."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=config.workers * 4,
    )
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(EchoLedger(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


def _stop_when_stdin_closes(stop: threading.Event) -> None:
    def watch() -> None:
        sys.stdin.buffer.read()  # returns at end of file
        stop.set()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def main() -> int:
    # the ledger's CLI reads LOYALTY_LEDGER_WORKERS; keep the pools the same size
    config = ServerConfig(workers=int(env("WORKERS", str(ServerConfig().workers))))
    server, health_servicer = build_server(config)
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        print("cannot listen on 127.0.0.1", file=sys.stderr)
        return 1
    server.start()
    for service in ("", LEDGER_SERVICE):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _stop_when_stdin_closes(stop)
    print(f"PORT {port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
