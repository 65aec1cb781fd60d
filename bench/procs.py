"""Server subprocesses for the benchmark: start, wait until healthy, stop.

Both servers run in their own session (a Ctrl-C in the terminal reaches only
the benchmark, which then stops them in order) and, on Linux, get SIGTERM
from the kernel if the benchmark dies without cleaning up. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb

REPO = Path(__file__).resolve().parent.parent
LEDGER_SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0  # the ledger's own grace period is 10 s
_PR_SET_PDEATHSIG = 1
ENV_PREFIX = "LOYALTY_LEDGER_"
# never let an inherited setting point the benchmark at a real database
_SCRUBBED_ENV = (ENV_PREFIX + "DATABASE_URL", ENV_PREFIX + "DATA_DIR", ENV_PREFIX + "LISTEN")


class ServerError(RuntimeError):
    """A server did not start, or did not stop cleanly."""


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None
    ca_pem: bytes | None = None  # TLS: the CA its certificate chains to

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux for SIGTERM when the parent dies."""
    libc_name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_env() -> dict[str, str]:
    """This environment without the settings that choose the ledger's database or address."""
    return {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}


def ledger_overrides() -> dict[str, str]:
    """LOYALTY_LEDGER_* settings the servers will see (e.g. LOG_LEVEL)."""
    return {k: v for k, v in child_env().items() if k.startswith(ENV_PREFIX)}


def _spawn(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        args,
        cwd=REPO,
        env=child_env(),
        start_new_session=True,
        preexec_fn=_die_with_parent,
        **kwargs,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_port_line(proc: subprocess.Popen[bytes], timeout: float) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        raise ServerError(f"echo server did not report its port (got {line!r})")
    return int(line.split()[1])


def wait_healthy(server: Server, timeout: float = START_TIMEOUT_S) -> None:
    """Poll grpc.health.v1 until the ledger service is SERVING."""
    deadline = time.monotonic() + timeout
    request = health_pb2.HealthCheckRequest(service=LEDGER_SERVICE)
    channel = (
        grpc.secure_channel(server.target, grpc.ssl_channel_credentials(server.ca_pem))
        if server.ca_pem
        else grpc.insecure_channel(server.target)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise ServerError(f"{server.name} exited with {server.proc.returncode}")
            try:
                reply = stub.Check(request, timeout=1.0)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise ServerError(f"{server.name} not healthy after {timeout:.0f} s")


@contextlib.contextmanager
def echo_server(
    name: str = "echo", args: Sequence[str] = (), ca_pem: bytes | None = None
) -> Iterator[Server]:
    """bench/echo_server.py with ``args`` (``--threads N``, ``--tls CERT KEY``)."""
    proc = _spawn(
        [sys.executable, str(REPO / "bench" / "echo_server.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        server = Server(name, proc, _read_port_line(proc, START_TIMEOUT_S), ca_pem=ca_pem)
        wait_healthy(server)
        yield server
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def ledger_server(
    data_dir: Path,
    log_path: Path,
    *,
    tls: tuple[Path, Path, bytes] | None = None,
    extra: Sequence[str] = (),
    name: str = "ledger",
) -> Iterator[Server]:
    """``python -m ledger.cli serve`` on a free port; JSON logs go to ``log_path``.

    With ``tls`` (certificate, key, CA PEM) it runs the secure default: TLS
    and bearer tokens. Without, plaintext and no credentials (a labelled
    extra; LOYALTY_LEDGER_AUTH=tokens in the environment overrides)."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "ledger.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{port}",
        *extra,
    ]
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1]), "--auth", "tokens"]
    else:
        args += ["--plaintext"]
        if "LOYALTY_LEDGER_AUTH" not in ledger_overrides():
            args += ["--auth", "none"]
    with log_path.open("wb") as log:
        proc = _spawn(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        server = Server(name, proc, port, log_path, ca_pem=tls[2] if tls else None)
        try:
            wait_healthy(server)
        except ServerError as err:
            raise ServerError(f"{err}; log tail:\n{tail(log_path)}") from None
        yield server
    finally:
        stop(proc)


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")
