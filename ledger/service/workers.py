"""``serve --workers N``: one writer process and N worker processes on one port.

A Python process runs its handlers under one GIL, so one process serves
on one core however many the machine has. Here the work is split:

- **workers** (N processes, ``python -m ledger.service.workers``) each run
  a grpc.aio server on the same address with SO_REUSEPORT (the kernel
  spreads connections over them): TLS, HTTP/2, authentication (with their
  own cache of verified tokens), authorization, validation, reads,
  serialization. Every write, and every access record, goes to the writer
  over the worker's link (ledger/service/writer_link.py).
- the **writer** (this process) migrates the database, checks the keyring,
  owns the one appender of the database (group commit, the chain, the
  Merkle trees, idempotency, no overdraft: all decided in one place, as
  with a single process) and the background jobs (break-glass expiry,
  settle sweeps, scheduled checkpoints). It serves no gRPC itself.

State every worker must see alike lives outside them: revocations in the
revocation file (each worker re-reads it within a second), break-glass
grants in the database (re-read within a second), rate-limit buckets in
shared memory (access/shared_buckets.py).

Lifecycle: the writer starts, then the workers; it says ``listening`` once
every worker reports ready. A worker that dies is started again (workers
that die before they serve, three in a row, stop the server). SIGTERM (or SIGINT) to the
writer: each worker stops taking calls and finishes those in flight, whose
writes the writer still commits; then the writer commits what it holds and
exits. If the writer dies, each worker fails what is waiting with
UNAVAILABLE and exits (nothing acknowledged is lost: an answer only leaves
once its commit is durable).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from access.shared_buckets import SharedBuckets
from ledger import metrics
from ledger.config import ServerConfig
from ledger.server import LedgerServer, tune_gc
from ledger.service.stopping import StopFlag, stop_on_signals
from ledger.service.writer_link import WriterEnd

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 60.0  # a worker must be serving within this after its start
MAX_QUICK_DEATHS = 3  # workers dying before they serve, this many in a row, stop the server
EXIT_WRITER_GONE = 3  # a worker's exit code when its writer went away
_PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    started: float
    link: WriterEnd  # the writer's end of its link
    ready: threading.Event = field(default_factory=threading.Event)


def _die_with_parent(parent: int) -> None:
    """In the worker, first thing: SIGTERM when the writer dies (Linux),
    and exit now if it already has. Done here rather than between fork and
    exec (``preexec_fn``): the writer has threads, and loading a library in
    a forked child of a threaded process can deadlock."""
    libc = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and libc:
        ctypes.CDLL(libc, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(EXIT_WRITER_GONE)


def _reserve_port(listen: str) -> tuple[str, socket.socket]:
    """Bind the listen address with SO_REUSEPORT and keep the socket (not
    listening: it takes no connections) for the writer's lifetime, so the
    port cannot go to another program between worker restarts. Port 0
    picks a free port. A port someone already listens on is refused, as a
    single-process server would refuse it: a plain bind is tried first."""
    host, _, port_text = listen.rpartition(":")
    bind_host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    port = int(port_text)
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((bind_host, port))
            except OSError as err:
                hint = (
                    " (another server holds this port? give this one --listen HOST:PORT)"
                    if err.errno == errno.EADDRINUSE
                    else ""
                )
                raise OSError(f"cannot listen on {listen}: {err.strerror}{hint}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((bind_host, port))
    return f"{host}:{sock.getsockname()[1]}", sock


class Supervisor:
    """The writer process: a LedgerServer in the writer role, and its workers."""

    def __init__(self, config: ServerConfig, workers: int, log_level: str = "info") -> None:
        if workers < 1:
            raise ValueError("workers: must be at least 1 (0 serves in a single process)")
        self._metrics_dir: Path | None = None
        if config.metrics_listen and config.metrics_dir is None:
            # every process writes its values here; the writer serves their sum
            self._metrics_dir = Path(tempfile.mkdtemp(prefix=f"loyalty-metrics-{os.getpid()}-"))
            config = replace(config, metrics_dir=self._metrics_dir)
        self.config = config
        self.workers = workers
        self._log_level = log_level
        self._writer = LedgerServer(config, role="writer")
        self._buckets = SharedBuckets.create()
        self._reserved: socket.socket | None = None
        self._workers: dict[int, _Worker] = {}
        self._stopping = threading.Event()
        self._quick_deaths = 0
        self.listen = config.listen
        self.failed = ""

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def start(self) -> None:
        self._writer.start()
        try:
            self.listen, self._reserved = _reserve_port(self.config.listen)
            for index in range(self.workers):
                self._spawn(index)
            deadline = time.monotonic() + READY_TIMEOUT_S
            for worker in list(self._workers.values()):
                while not worker.ready.wait(0.1):
                    if worker.proc.poll() is not None:
                        raise RuntimeError(
                            f"worker {worker.index} exited with {worker.proc.returncode} at start"
                        )
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"worker {worker.index} not ready in time")
        except BaseException:
            self.stop()
            raise
        log.info(
            "listening",
            address=self.listen,
            workers=self.workers,
            tls=self.config.tls_cert is not None,
            auth=self.config.auth,
        )

    def _spawn(self, index: int) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = replace(self.config, listen=self.listen)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger.service.workers",
                "--link-fd",
                str(theirs.fileno()),
                "--buckets-fd",
                str(self._buckets.fd),
                "--index",
                str(index),
                "--log-level",
                self._log_level,
                "--parent",
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            pass_fds=(theirs.fileno(), self._buckets.fd),
        )
        theirs.close()
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(config))
        proc.stdin.close()
        end = self._writer.add_worker(mine, f"worker-{index}")
        worker = _Worker(index, proc, time.monotonic(), end)
        end.on_ready = worker.ready.set
        self._workers[index] = worker

    def watch(self) -> None:
        """Once: start again any worker that died (not while stopping)."""
        for index, worker in list(self._workers.items()):
            code = worker.proc.poll()
            if code is None or self._stopping.is_set():
                continue
            lived = time.monotonic() - worker.started
            log.error("worker_died", worker=index, exit_code=code, seconds=round(lived, 1))
            if self.config.metrics_dir is not None:  # its gauges go; its counts stay summed
                metrics.mark_process_dead(worker.proc.pid, self.config.metrics_dir)
            # closed on the writer's event loop, which owns the socket: closed
            # from here, its fd number could be reused by the next link while
            # the loop's selector still has it registered
            self._writer.remove_worker(worker.link)
            # a worker that never said it was serving is dying at start
            self._quick_deaths = 0 if worker.ready.is_set() else self._quick_deaths + 1
            if self._quick_deaths >= MAX_QUICK_DEATHS:
                self.failed = f"workers keep dying at start (last exit code {code})"
                return
            self._spawn(index)

    def run(self, stop: StopFlag) -> int:
        while not stop.wait(0.2):
            self.watch()
            if self.failed:
                log.error("cannot_serve", error=self.failed)
                self.stop()
                return 2
        log.info("shutdown_requested", grace_seconds=self.config.grace_seconds)
        self.stop()
        return 0

    def stop(self) -> None:
        """Workers first (they finish their calls, whose writes still
        commit), then the writer."""
        self._stopping.set()
        for worker in self._workers.values():
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_seconds + 10
        for worker in self._workers.values():
            try:
                worker.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker_kill", worker=worker.index)
                worker.proc.kill()
                worker.proc.wait()
        self._writer.stop()
        if self._reserved is not None:
            self._reserved.close()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)


def run_worker(link_fd: int, buckets_fd: int) -> int:
    """A worker process: config from stdin, its link on ``link_fd``, the
    shared rate-limit buckets on ``buckets_fd``."""
    config: ServerConfig = pickle.loads(sys.stdin.buffer.read())
    link = socket.socket(fileno=link_fd)
    server = LedgerServer(config, role="worker", link=link, buckets=SharedBuckets(buckets_fd))
    stop = StopFlag()
    gone = StopFlag()
    stop_on_signals(stop)

    def writer_gone() -> None:
        gone.set()
        stop.set()

    server.on_link_lost = writer_gone
    tune_gc()
    server.start()
    assert server.link is not None
    server.link.announce_ready()
    while not stop.wait(0.5):
        pass
    server.stop(grace=0 if gone.is_set() else None)
    return EXIT_WRITER_GONE if gone.is_set() else 0


def main(argv: list[str] | None = None) -> int:
    from ledger import logging as ledger_logging

    parser = argparse.ArgumentParser(description="a worker of `loyalty-ledger serve --workers N`")
    parser.add_argument("--link-fd", type=int, required=True)
    parser.add_argument("--buckets-fd", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--parent", type=int, default=0, help="the writer's pid")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with_parent(args.parent)
    ledger_logging.configure(args.log_level)
    ledger_logging.CALLS.static = {"worker": args.index}
    return run_worker(args.link_fd, args.buckets_fd)


if __name__ == "__main__":
    sys.exit(main())
