"""Assembles and runs the gRPC server: ledger service, health, reflection.

``LedgerServer.start`` migrates the database, starts the appender and the
gRPC server; ``stop`` shuts down in order: health goes NOT_SERVING, the
server stops taking calls and lets in-flight ones finish (grace period),
the appender commits what it holds, and the database is closed.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from loyalty.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from ledger.appender import Appender, Clock, system_clock_us
from ledger.config import ServerConfig
from ledger.service.interceptors import CallObserver
from ledger.service.servicer import LedgerServicer
from ledger.storage.database import Database, open_database
from ledger.storage.journal_reads import JournalReads
from ledger.storage.migrate import upgrade

log = structlog.get_logger(__name__)

LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerServer:
    def __init__(self, config: ServerConfig, *, clock: Clock = system_clock_us) -> None:
        self.config = config
        self._clock = clock
        self._stopped = threading.Event()
        self.port = 0
        self.db: Database | None = None
        self.appender: Appender | None = None
        self._server: grpc.Server | None = None
        self._health: health.HealthServicer | None = None

    def start(self) -> int:
        cfg = self.config
        if not cfg.database_url:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_database(cfg.resolved_database_url())
        upgrade(self.db)
        self.appender = Appender(db=self.db, clock=self._clock, max_batch=cfg.max_batch)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="rpc"),
            interceptors=[CallObserver()],
            options=[
                ("grpc.max_receive_message_length", cfg.max_message_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=cfg.workers * 4,
        )
        ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
            LedgerServicer(
                appender=self.appender, reads=JournalReads(self.db.reader), limits=cfg.limits
            ),
            server,
        )
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (LEDGER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.port = server.add_insecure_port(cfg.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {cfg.listen}")
        server.start()
        self._server = server
        for service in ("", LEDGER_SERVICE):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.warning(
            "listening_plaintext",
            address=cfg.listen.rsplit(":", 1)[0] + f":{self.port}",
            note="no TLS: development only",
        )
        return self.port

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_seconds if grace is None else grace
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
        if self.appender is not None:
            self.appender.close()
        if self.db is not None:
            self.db.dispose()
        log.info("stopped")

    def wait(self) -> None:
        self._stopped.wait()
