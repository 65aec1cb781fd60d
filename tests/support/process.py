"""Run ``loyalty-ledger serve`` as a real child process and wait until its
health service says SERVING."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def cli_path() -> str:
    found = shutil.which("loyalty-ledger") or str(Path(sys.executable).parent / "loyalty-ledger")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    def __init__(
        self,
        *,
        data_dir: Path,
        database_url: str = "",
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # development mode unless the test asks for more: plaintext, no credentials
        defaults = {"LOYALTY_LEDGER_PLAINTEXT": "1", "LOYALTY_LEDGER_AUTH": "none"}
        env = {**os.environ, **defaults, "LOYALTY_LEDGER_LISTEN": self.address, **(env or {})}
        self._workers = env.get("LOYALTY_LEDGER_WORKERS", "")
        args = [cli_path(), "serve", "--data-dir", str(data_dir)]
        if database_url:
            args += ["--database-url", database_url]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def health_channel(self) -> grpc.Channel:
        """A channel the health check needs no credentials on (plaintext here)."""
        return grpc.insecure_channel(self.address)

    def wait_serving(self, timeout: float = 30.0) -> float:
        """Seconds from spawn until the health check answered SERVING."""
        deadline = time.monotonic() + timeout
        with self.health_channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early: {self.log_path.read_text()}")
                try:
                    resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING and self._all_up():
                        return time.monotonic() - self.started
                except grpc.RpcError:
                    time.sleep(0.1)
        raise TimeoutError(f"server not serving after {timeout}s: {self.log_path.read_text()}")

    def _all_up(self) -> bool:
        """With workers, the first one answers health before the others
        listen: the writer's ``listening`` line (with ``workers``) says all are."""
        if self._workers == "0":
            return True
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return '"workers":' in text and '"listening"' in text

    def worker_pids(self) -> list[int]:
        """The worker processes of ``serve --workers N`` (the writer's children)."""
        found: list[int] = []
        task_dir = Path(f"/proc/{self.proc.pid}/task")
        for task in task_dir.iterdir() if task_dir.exists() else ():
            try:
                found += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        return sorted(found)

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``loyalty-ledger --log-level error ARGS`` in a subprocess."""
    return subprocess.run(
        [cli_path(), "--log-level", "error", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )
