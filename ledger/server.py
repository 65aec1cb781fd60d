"""Assembles and runs the gRPC server: ledger service, health, reflection.

The server is grpc.aio: one event loop runs every handler, so thousands of
calls can wait for their group commit without a thread each. The loop runs
in a background thread (``_LoopThread``), which keeps ``LedgerServer`` a
plain object that the CLI and the tests start and stop from ordinary code.

``LedgerServer.start`` migrates the database, starts the appender and the
gRPC server; ``stop`` shuts down in order: health goes NOT_SERVING, the
server stops taking calls and lets in-flight ones finish (grace period),
the appender commits what it holds, and the database is closed.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc
import structlog
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from loyalty.access.v1 import access_pb2, access_pb2_grpc
from loyalty.audit.v1 import audit_pb2, audit_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from loyalty.members.v1 import members_pb2, members_pb2_grpc
from loyalty.rewards.v1 import rewards_pb2, rewards_pb2_grpc

from access.break_glass import BreakGlass
from access.gate import Gate
from access.ratelimit import CallLimits, RateLimiter
from access.shared_buckets import SharedBuckets
from access.tokens import RevocationFile, TokenVerifier, load_or_create_signing_key
from ledger import metrics
from ledger.appender import Appender, Clock, system_clock_us
from ledger.checkpoints import LOG_NAMES, Checkpointer, LogKeys
from ledger.commands import Settle
from ledger.config import ServerConfig
from ledger.keys import voucher_code
from ledger.keys.keyring import FileKeyring
from ledger.logging import CALLS
from ledger.members.profile import ProfileRules
from ledger.members.rotation import backfill_keys, check_keyring, commit_legacy_profiles
from ledger.members.vault import MemberVault
from ledger.merkle_logs import ACCESS_LOG, JOURNAL_LOG
from ledger.service.access_servicer import AccessServicer, GrantEventRecorder
from ledger.service.audit_servicer import AuditServicer
from ledger.service.member_servicer import MemberServicer, attach_member_checks
from ledger.service.observe import ANONYMOUS_DENIALS, Checks, add_health, observe_service
from ledger.service.readiness import Readiness, probe_readable, probe_writable
from ledger.service.reward_servicer import RewardServicer
from ledger.service.servicer import LedgerServicer
from ledger.service.writer_link import RemoteAppender, WriterEnd
from ledger.signer_state import SignerState
from ledger.storage.break_glass import GrantTable
from ledger.storage.database import Database, WalCheckpointer, open_database
from ledger.storage.journal_reads import JournalReads
from ledger.storage.log_reads import LogReads
from ledger.storage.members import MemberStore
from ledger.storage.migrate import upgrade

log = structlog.get_logger(__name__)

LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
MEMBER_SERVICE = members_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name
ACCESS_SERVICE = access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name
AUDIT_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name
REWARD_SERVICE = rewards_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name
SERVICES = (LEDGER_SERVICE, MEMBER_SERVICE, ACCESS_SERVICE, AUDIT_SERVICE, REWARD_SERVICE)
SWEEP_INTERVAL = 1.0  # seconds between checks for expired break-glass grants
METRICS_SAMPLE_S = 2.0  # seconds between samples of log sizes, checkpoint ages, queue depth
T = TypeVar("T")


GC_THRESHOLD = 50_000  # young objects between collections (CPython's default: 700)


def tune_gc() -> None:
    """For a serving process: what was loaded at start (modules, protobuf
    descriptors, the program) is frozen out of every collection, and the
    young generation is collected every 50,000 allocations instead of 700.
    A call allocates hundreds of short-lived objects that reference counting
    frees anyway; collecting them every few calls cost 5 % of a worker."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


class _LoopThread:
    """One event loop for every server in this process, in a daemon thread."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T]) -> T:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="grpc-aio", daemon=True).start()
                cls._loop = loop
            loop = cls._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


def new_grpc_server(config: ServerConfig, *, reuse_port: bool = False) -> grpc.aio.Server:
    """A grpc.aio server with the ledger's limits (the benchmark's echo
    server is built here too, so both are measured on equal terms).
    ``reuse_port``: several worker processes listen on one port, and the
    kernel spreads connections over them (SO_REUSEPORT)."""
    return grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )


# what a LedgerServer runs: everything in one process ("single"), or one
# side of the multi-process server (ledger/service/workers.py): the
# "writer" owns the appender and the background jobs and serves no gRPC;
# a "worker" serves gRPC and sends every write to the writer
ROLES = ("single", "writer", "worker")


class LedgerServer:
    def __init__(
        self,
        config: ServerConfig,
        *,
        clock: Clock = system_clock_us,
        role: str = "single",
        link: socket.socket | None = None,
        buckets: SharedBuckets | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role: must be one of {ROLES}")
        if (role == "worker") != (link is not None):
            raise ValueError("link: a worker needs its end of the writer link, and only a worker")
        self.config = config
        self.role = role
        self._link_socket = link
        self.link: RemoteAppender | None = None  # a worker's way to the writer
        self._buckets = buckets  # rate-limit buckets shared by the workers
        self._writer_ends: list[WriterEnd] = []
        self._wal: WalCheckpointer | None = None
        self._clock = clock
        self._stopped = threading.Event()
        self.port = 0
        self.db: Database | None = None
        self.appender: Appender | None = None
        self.break_glass: BreakGlass | None = None
        self.vault: MemberVault | None = None
        self.log_keys: LogKeys | None = None
        self.voucher_secret = b""  # the keyring's voucher-code secret, once started
        self.checkpointer: Checkpointer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.on_link_lost: Callable[[], None] | None = None  # worker: the writer went away
        self.metrics_port = 0
        self._metrics_http: metrics.Endpoint | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None

    def start(self) -> int:
        cfg = self.config
        if not cfg.database_url:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
        if cfg.metrics_listen or cfg.metrics_dir is not None:
            metrics.setup(cfg.metrics_dir)
        if cfg.metrics_listen and self.role != "worker":  # workers' values: summed here
            self._metrics_http = metrics.serve(cfg.metrics_listen)
            self.metrics_port = self._metrics_http.port
            log.info(
                "metrics",
                url=f"http://{cfg.metrics_listen.rpartition(':')[0]}:{self.metrics_port}/metrics",
            )
        self.db = open_database(
            cfg.resolved_database_url(), background_checkpoints=self.role != "worker"
        )
        try:
            if self.db.is_sqlite and self.role != "worker":
                self._wal = WalCheckpointer(self.db.sqlite_path)
                self._wal.start()
            if self.role != "worker":  # the writer migrated before it started workers
                upgrade(self.db)
            keyring = FileKeyring.open(cfg.keyring_path)
            self.vault = MemberVault.for_keyring(keyring)
            self.log_keys = LogKeys.from_keyring(keyring, cfg.log_origin)
            # created by the writer before its workers start (they read it)
            self.voucher_secret = keyring.secret(voucher_code.SECRET_NAME)
            self.checkpointer = Checkpointer(
                reads=LogReads(self.db),
                keys=self.log_keys,
                clock=self._clock,
                state=SignerState(cfg.signer_state_path),
                witness_dir=cfg.witness_dir,
                witnesses=cfg.witnesses,
            )
            if self.role != "worker":
                # not ready on a database that disagrees with what was signed
                for log_id in LOG_NAMES:
                    self.checkpointer.check_tail(log_id)
            journal: Appender | RemoteAppender
            if self.role == "worker":
                self.link = journal = RemoteAppender()
            else:
                check_keyring(self.db, self.vault)
                added = backfill_keys(self.db, self.vault, self._clock())
                if added:
                    log.info("data_keys_backfilled", accounts=added)
                self.appender = journal = Appender(
                    db=self.db,
                    clock=self._clock,
                    max_batch=cfg.max_batch,
                    vault=self.vault,
                    program=cfg.program,
                    max_points=cfg.limits.max_points_per_entry,
                )
                committed = commit_legacy_profiles(self.db, self.appender, self._clock())
                if committed:
                    log.info("profile_commitments_backfilled", members=committed)
            self.break_glass = BreakGlass(
                store=GrantTable(self.db),
                events=GrantEventRecorder(journal.record_blocking),
                clock=self._clock,
            )
            if self.role != "worker":
                self.break_glass.sweep()  # grants that expired while the server was down
            self.port = _LoopThread.run(self._start(journal, self.db))
        except BaseException:
            self.stop(grace=0)  # e.g. the port is taken: release what was started
            raise
        if self.role == "writer":
            return 0
        address = cfg.listen.rsplit(":", 1)[0] + f":{self.port}"
        if cfg.tls_cert is None or cfg.auth == "none":
            log.warning(
                "listening_insecure",
                address=address,
                tls=cfg.tls_cert is not None,
                auth=cfg.auth,
                note="development only: "
                + ("no TLS; " if cfg.tls_cert is None else "")
                + ("NO AUTHENTICATION, anyone can call" if cfg.auth == "none" else ""),
            )
        else:
            log.info(
                "listening",
                address=address,
                tls=True,
                mtls=cfg.client_ca is not None,
                auth=cfg.auth,
            )
        return self.port

    def add_worker(self, sock: socket.socket, name: str) -> WriterEnd:
        """Writer: serve one worker's end of a link (ledger/service/workers.py)."""
        assert self.role == "writer" and self.appender is not None
        assert self.db is not None and self.vault is not None
        store, vault = MemberStore(self.db), self.vault
        end = WriterEnd(
            self.appender, name, prepare=lambda c: attach_member_checks(c, store, vault)
        )
        _LoopThread.run(end.serve(sock))
        self._writer_ends.append(end)
        return end

    def remove_worker(self, end: WriterEnd) -> None:
        """Writer: close a (dead) worker's link on the event loop that owns it."""
        _LoopThread.run(end.aclose())
        if end in self._writer_ends:
            self._writer_ends.remove(end)

    def _writer_tasks(self, appender: Appender, db: Database) -> None:
        """The background jobs of the process that owns the appender."""
        cfg = self.config
        assert self.break_glass is not None and self.checkpointer is not None
        self._tasks.append(asyncio.create_task(self._sweep(self.break_glass)))
        if cfg.settle_interval > 0:
            self._tasks.append(
                asyncio.create_task(
                    self._settle(appender, JournalReads(db.reader), cfg.settle_interval)
                )
            )
        if cfg.checkpoint_interval > 0:
            self._tasks.append(
                asyncio.create_task(self._checkpoints(self.checkpointer, cfg.checkpoint_interval))
            )
        if cfg.metrics_listen or cfg.metrics_dir is not None:
            self._tasks.append(asyncio.create_task(self._sample_metrics(appender, db)))

    async def _start(self, appender: Appender | RemoteAppender, db: Database) -> int:
        cfg = self.config
        if isinstance(appender, RemoteAppender):
            assert self._link_socket is not None
            await appender.connect(self._link_socket)
        elif self.role == "writer":
            self._writer_tasks(appender, db)
            return 0
        server = new_grpc_server(cfg, reuse_port=self.role == "worker")
        assert self.break_glass is not None and self.vault is not None
        assert self.checkpointer is not None and self.log_keys is not None
        checks = Checks(
            gate=self._gate(self.break_glass),
            limits=CallLimits(
                per_principal=cfg.principal_rate,
                per_member=cfg.member_rate,
                lookups=cfg.lookup_rate,
                shared=self._buckets,
            ),
            decisions=appender,  # the access log, written by the appender
            anonymous=RateLimiter(ANONYMOUS_DENIALS, scope="peer", shared=self._buckets),
        )
        store = MemberStore(db)
        reads = JournalReads(db.reader)  # one pool of read connections for both
        members = MemberServicer(
            appender=appender,
            store=store,
            vault=self.vault,
            rules=ProfileRules(frozenset(cfg.member_fields), cfg.phone_region),
        )
        for add, servicer in (
            (
                ledger_pb2_grpc.add_LedgerServiceServicer_to_server,
                LedgerServicer(
                    appender=appender,
                    reads=reads,
                    limits=cfg.limits,
                    vault=self.vault,
                    members=store,
                    clock=self._clock,
                    program=cfg.program,
                ),
            ),
            (members_pb2_grpc.add_MemberServiceServicer_to_server, members),
            (
                rewards_pb2_grpc.add_RewardServiceServicer_to_server,
                RewardServicer(
                    appender=appender,
                    reads=reads,
                    secret=self.voucher_secret,
                    clock=self._clock,
                    program=cfg.program,
                ),
            ),
            (
                access_pb2_grpc.add_AccessServiceServicer_to_server,
                AccessServicer(break_glass=self.break_glass),
            ),
            (
                audit_pb2_grpc.add_AuditServiceServicer_to_server,
                AuditServicer(
                    reads=LogReads(db),
                    checkpointer=self.checkpointer,
                    keys=self.log_keys,
                    db=db,
                    clock=self._clock,
                ),
            ),
        ):
            observe_service(server, add, servicer, checks=checks)
        self._health = health_aio.HealthServicer()
        add_health(server, self._health)
        # reflection lists the contract to authenticated principals only: it
        # passes the same gate as every other call
        observe_service(
            server,
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
            reflection.aio.ReflectionServicer((*SERVICES, HEALTH_SERVICE, reflection.SERVICE_NAME)),
            checks=checks,
        )
        port = self._listen(server)
        if port == 0:
            raise OSError(
                f"cannot listen on {cfg.listen} (in use by another server? give this one "
                "--listen HOST:PORT)"
            )
        await server.start()
        self._server = server
        await self._set_serving(True)
        # NOT_SERVING while the database cannot be written (read, for a
        # worker) or the writer link is down; SERVING again on recovery
        if isinstance(appender, Appender):
            readiness = Readiness(lambda: probe_writable(db), self._set_serving)
        else:
            link = appender
            readiness = Readiness(
                lambda: probe_readable(db),
                self._set_serving,
                extra=lambda: "writer_link_lost" if link.lost.is_set() else "",
            )
        self._tasks.append(asyncio.create_task(readiness.run()))
        self._tasks.append(asyncio.create_task(self._summaries(checks)))
        if isinstance(appender, Appender):
            self._writer_tasks(appender, db)
        else:
            self._tasks.append(asyncio.create_task(self._watch_link(appender)))
        return port

    async def _sample_metrics(self, appender: Appender, db: Database) -> None:
        """Every few seconds: queue depth, log sizes, checkpoint ages, witness lag."""
        reads = LogReads(db)
        witnesses = [w.key.name for w in self.config.witnesses]

        def read() -> tuple[dict[str, int], dict[str, float], dict[tuple[str, str], int]]:
            sizes: dict[str, int] = {}
            ages: dict[str, float] = {}
            lags: dict[tuple[str, str], int] = {}
            now_us = self._clock()
            for log_id, name in LOG_NAMES.items():
                sizes[name] = reads.head(log_id)[0]
                latest = reads.latest_checkpoint(log_id)
                ages[name] = (now_us - latest.created_us) / 1e6 if latest is not None else -1.0
                for witness in witnesses:
                    lags[(name, witness)] = sizes[name] - reads.cosigned_size(log_id, witness)
            return sizes, ages, lags

        while True:
            try:
                sizes, ages, lags = await asyncio.to_thread(read)
                metrics.sample(
                    queue_depth=appender.queue_depth,
                    log_sizes=sizes,
                    checkpoint_ages=ages,
                    witness_lags=lags,
                )
            except Exception:
                log.debug("metrics_sample_failed", exc_info=True)
            await asyncio.sleep(METRICS_SAMPLE_S)

    async def _set_serving(self, serving: bool) -> None:
        if self._health is None or self._stopped.is_set():
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *SERVICES):
            await self._health.set(service, status)

    async def _watch_link(self, link: RemoteAppender) -> None:
        """Worker: when the writer goes away, stop saying SERVING (every
        write would fail) and let ``on_link_lost`` end the process."""
        await link.lost.wait()
        await self._set_serving(False)
        if self.on_link_lost is not None:
            self.on_link_lost()

    @staticmethod
    async def _summaries(checks: Checks) -> None:
        """Once a second: record the count of denials that were only
        counted; every quarter second: write the buffered call lines."""
        ticks = 0
        while True:
            await asyncio.sleep(0.25)
            CALLS.flush()
            ticks += 1
            if ticks % 4:
                continue
            try:
                await checks.flush_suppressed()
            except Exception:
                log.exception("denial_summary_failed")

    @staticmethod
    async def _checkpoints(checkpointer: Checkpointer, interval: float) -> None:
        """Sign a checkpoint of each log that grew, every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            for log_id in (JOURNAL_LOG, ACCESS_LOG):
                try:
                    await asyncio.to_thread(checkpointer.issue_if_grown, log_id)
                except Exception:
                    log.exception("scheduled_checkpoint_failed", log=log_id)

    async def _settle(self, appender: Appender, reads: JournalReads, interval: float) -> None:
        """Settle members whose holds timed out or whose lots matured or
        expired, a bounded batch at a time. Every server may run this: a
        settle decides from the state under the writers' lock, so a member
        settled twice gets nothing the second time."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.settle_due(appender, reads)
            except Exception:
                log.exception("settle_sweep_failed")

    def settle_now(self) -> int:
        """One settle sweep, from any thread (tests, after moving the clock)."""
        assert self.appender is not None and self.db is not None
        return _LoopThread.run(self.settle_due(self.appender, JournalReads(self.db.reader)))

    async def settle_due(self, appender: Appender, reads: JournalReads) -> int:
        """One sweep; returns how many members were settled."""
        due = await asyncio.to_thread(reads.due_members, self._clock(), 500)
        if due:
            await asyncio.gather(*(appender.append(Settle(member)) for member in due))
        return len(due)

    @staticmethod
    async def _sweep(break_glass: BreakGlass) -> None:
        """Record the end of break-glass grants as they expire."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await asyncio.to_thread(break_glass.sweep)
            except Exception:
                log.exception("break_glass_sweep_failed")

    def _gate(self, break_glass: BreakGlass) -> Gate | None:
        cfg = self.config
        if cfg.auth == "none":
            return None
        if cfg.auth not in ("tokens", "mtls"):
            raise ValueError(f"auth: must be 'none', 'tokens' or 'mtls', got {cfg.auth!r}")
        if cfg.auth == "mtls" and not (cfg.tls_cert and cfg.client_ca):
            raise ValueError("auth: 'mtls' needs --tls-cert, --tls-key and --client-ca")
        key = load_or_create_signing_key(cfg.token_key_path)
        verifier = TokenVerifier.for_keys(
            [key.public_key()], revoked=RevocationFile(cfg.revocations_path)
        )
        return Gate(verifier, accept_certificates=cfg.auth == "mtls", break_glass=break_glass)

    def _listen(self, server: grpc.aio.Server) -> int:
        cfg = self.config
        if cfg.tls_cert is None:
            if not cfg.plaintext:
                raise ValueError(
                    "tls: --tls-cert and --tls-key are required (`loyalty-ledger dev-certs` "
                    "makes local ones); --plaintext listens without TLS, for development only"
                )
            return server.add_insecure_port(cfg.listen)
        if cfg.tls_key is None:
            raise ValueError("tls: --tls-cert needs --tls-key")
        credentials = grpc.ssl_server_credentials(
            [(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())],
            root_certificates=cfg.client_ca.read_bytes() if cfg.client_ca else None,
            require_client_auth=cfg.client_ca is not None,
        )
        return server.add_secure_port(cfg.listen, credentials)

    async def _stop(self, grace: float) -> None:
        for task in self._tasks:
            task.cancel()
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        CALLS.flush()
        if self.link is not None:
            self.link.close()
        for end in self._writer_ends:
            end.close()

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_seconds if grace is None else grace
        _LoopThread.run(self._stop(grace))
        if self.appender is not None:
            self.appender.close()
        if self._wal is not None:
            self._wal.stop()
        if self.db is not None:
            self.db.dispose()
        if self._metrics_http is not None:
            self._metrics_http.close()
        log.info("stopped")
