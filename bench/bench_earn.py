"""Earn throughput and latency of the ledger, against a bare gRPC echo server.

Method (one run of ``python bench/bench_earn.py``):

1. Storage ceiling: plain sqlite3 appends into a WAL database with
   synchronous=FULL in the temp directory, committing every row, then every
   64 rows (bench/storage_ceiling.py). Done first, while nothing else runs.
2. Two servers, each in its own subprocess, bound to 127.0.0.1:
   - echo: a grpc.aio server built like ledger/server.py (same
     options) whose Earn returns a canned EarnResponse (bench/echo_server.py);
   - ledger: ``python -m ledger.cli serve`` on a fresh data directory (SQLite,
     durable), JSON logs to a file; both are waited for with grpc.health.v1.
3. ``--accounts`` member accounts are opened on the ledger via OpenAccount.
4. ``--rounds`` rounds, each measuring echo then ledger with the same
   grpc.aio load generator (bench/loadgen.py), run in this process:
   ``--clients`` closed-loop clients over ``--channels`` connections, each
   Earn with a unique idempotency key on a random account, ``--warmup``
   seconds unrecorded, then a ``--seconds`` window. Per measurement:
   calls/s, latency p50/p99, non-OK statuses, and the CPU the server process
   and this process used during the window (in cores).
   Reported figures are medians over rounds; the ratio is ledger/echo of the
   median throughputs (the project's target is >= 0.5 at 64 clients).
5. Optionally (``--py-spy FILE``) one extra ledger measurement with py-spy
   sampling the server; it is reported apart and not in the medians.
6. The ledger is stopped (SIGTERM, graceful) and, per ledger window, its
   journal gives the number of group commits and their size, its log the
   handler time per call (bench/ledger_stats.py). Then
   ``python -m ledger.cli verify`` must pass, and the journal must hold at
   least every acknowledged Earn.

Exit status: 0 on success; 1 if any ledger call failed, verification failed
or acknowledged entries are missing; 2 if the setup failed; 130 if
interrupted. Subprocesses and the temp directory are cleaned up in every
case (``--keep-tmp`` keeps the directory, e.g. for the server log).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import ledger_stats
import loadgen
import procs
import storage_ceiling

TARGET_RATIO = 0.5
STORAGE_BATCH = 64
PY_SPY_RATE = 200  # samples per second

DEFAULTS: dict[str, Any] = {
    "clients": 64,
    "channels": 8,
    "seconds": 10.0,
    "warmup": 2.0,
    "rounds": 3,
    "accounts": 1000,
    "storage_seconds": 3.0,
}
QUICK: dict[str, Any] = {
    "clients": 16,
    "channels": 4,
    "seconds": 2.0,
    "warmup": 0.5,
    "rounds": 1,
    "accounts": 100,
    "storage_seconds": 0.5,
}


@dataclass(frozen=True)
class Settings:
    clients: int
    channels: int
    seconds: float
    warmup: float
    rounds: int
    accounts: int
    storage_seconds: float
    json_path: Path | None
    py_spy: Path | None
    keep_tmp: bool
    tmp_base: Path | None


@dataclass
class Measurement:
    server: str
    round: int  # 0 for the profiled run
    result: loadgen.LoadResult
    server_cpu: float | None = None  # cores used by the server during the window
    client_cpu: float | None = None  # cores used by this process during the window
    journal: ledger_stats.JournalWindow | None = None
    handler_ms: list[float] = field(default_factory=list)

    @property
    def window(self) -> tuple[float, float]:
        start = self.result.window_start_wall
        return start, start + self.result.window_s

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        out: dict[str, Any] = {
            "server": self.server,
            "round": self.round,
            "calls": r.calls,
            "calls_per_s": round(r.throughput, 1),
            "p50_ms": round(r.percentile_ms(0.5), 3),
            "p99_ms": round(r.percentile_ms(0.99), 3),
            "ok_total": r.ok_total,
            "errors": dict(r.errors),
            "server_cpu_cores": _round(self.server_cpu),
            "client_cpu_cores": _round(self.client_cpu),
        }
        if self.journal is not None:
            out |= {
                "commits": self.journal.commits,
                "commits_per_s": round(self.journal.commits / r.window_s, 1),
                "entries": self.journal.entries,
                "group_size": round(self.journal.group_size, 2),
                "handler_p50_ms": _round(loadgen.percentile(self.handler_ms, 0.5)),
                "handler_p99_ms": _round(loadgen.percentile(self.handler_ms, 0.99)),
            }
        return out


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


# --- command line -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Settings:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, help="concurrent closed-loop clients (default 64)")
    p.add_argument(
        "--channels", type=int, help="gRPC channels (connections) shared by the clients (default 8)"
    )
    p.add_argument("--seconds", type=float, help="measured window per run (default 10)")
    p.add_argument("--warmup", type=float, help="unrecorded warm-up before each window (default 2)")
    p.add_argument(
        "--rounds", type=int, help="echo/ledger rounds; medians are reported (default 3)"
    )
    p.add_argument("--accounts", type=int, help="member accounts opened beforehand (default 1000)")
    p.add_argument(
        "--storage-seconds", type=float, help="duration of each raw sqlite3 run (default 3)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 16 clients, 0.5 s warm-up + 2 s, 1 round, 100 accounts",
    )
    p.add_argument("--json", type=Path, dest="json_path", help="also write the JSON summary here")
    p.add_argument(
        "--py-spy",
        type=Path,
        help="profile one extra ledger run with py-spy into this "
        "file (collapsed stacks, per thread)",
    )
    p.add_argument(
        "--keep-tmp", action="store_true", help="keep the temp directory (server log, db)"
    )
    p.add_argument(
        "--tmp-dir", type=Path, dest="tmp_base", help="where to create the temp directory"
    )
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    values = {k: base[k] if getattr(args, k) is None else getattr(args, k) for k in DEFAULTS}
    settings = Settings(
        **values,
        json_path=args.json_path,
        py_spy=args.py_spy,
        keep_tmp=args.keep_tmp,
        tmp_base=args.tmp_base,
    )
    if min(settings.clients, settings.channels, settings.rounds, settings.accounts) < 1:
        p.error("--clients, --channels, --rounds and --accounts must be >= 1")
    if settings.seconds <= 0 or settings.warmup < 0 or settings.storage_seconds <= 0:
        p.error("--seconds and --storage-seconds must be > 0, --warmup >= 0")
    return settings


# --- phases -------------------------------------------------------------------


@contextlib.contextmanager
def workdir(settings: Settings) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-earn-", dir=settings.tmp_base))
    try:
        yield path
    finally:
        if settings.keep_tmp:
            print(f"kept temp directory: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def measure_storage(tmp: Path, seconds: float) -> dict[str, Any]:
    folder = tmp / "raw-sqlite"
    folder.mkdir()
    return {
        "filesystem": storage_ceiling.filesystem_of(folder),
        "commit_per_row_rows_s": round(
            storage_ceiling.rows_per_second(folder / "single.db", batch=1, seconds=seconds), 1
        ),
        f"commit_per_{STORAGE_BATCH}_rows_rows_s": round(
            storage_ceiling.rows_per_second(
                folder / "batch.db", batch=STORAGE_BATCH, seconds=seconds
            ),
            1,
        ),
    }


class _CpuMeter:
    """CPU used by the server process and by this process between start() and end()."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._start: tuple[float | None, float, float] = (None, 0.0, 0.0)
        self.server: float | None = None
        self.client: float | None = None

    def start(self) -> None:
        self._start = (procs.cpu_seconds(self._pid), time.process_time(), time.perf_counter())

    def end(self) -> None:
        server0, client0, wall0 = self._start
        wall = time.perf_counter() - wall0
        server1 = procs.cpu_seconds(self._pid)
        self.client = (time.process_time() - client0) / wall
        if server0 is not None and server1 is not None:
            self.server = (server1 - server0) / wall


def measure(
    server: procs.Server,
    settings: Settings,
    accounts: Sequence[str],
    key_prefix: str,
    round_no: int,
    on_start: loadgen.Hook | None = None,
) -> Measurement:
    meter = _CpuMeter(server.pid)

    def start() -> None:
        meter.start()
        if on_start is not None:
            on_start()

    result = loadgen.run_load(
        server.target,
        clients=settings.clients,
        channels=settings.channels,
        warmup=settings.warmup,
        seconds=settings.seconds,
        accounts=accounts,
        key_prefix=f"{key_prefix}.{server.name}{round_no}",
        on_start=start,
        on_end=meter.end,
    )
    found = Measurement(server.name, round_no, result, meter.server, meter.client)
    _print_measurement(found)
    return found


def run_rounds(
    echo: procs.Server,
    ledger: procs.Server,
    settings: Settings,
    accounts: Sequence[str],
    key_prefix: str,
) -> list[Measurement]:
    done: list[Measurement] = []
    for round_no in range(1, settings.rounds + 1):
        for server in (echo, ledger):
            done.append(measure(server, settings, accounts, key_prefix, round_no))
    return done


def _py_spy_binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_ledger(
    ledger: procs.Server, settings: Settings, accounts: Sequence[str], key_prefix: str, out: Path
) -> Measurement | None:
    """One extra ledger measurement with py-spy recording the server's window."""
    binary = _py_spy_binary()
    if binary is None:
        print("py-spy not found (pip install py-spy); skipping the profile")
        return None
    spies: list[subprocess.Popen[bytes]] = []

    def launch() -> None:
        spies.append(
            subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(ledger.pid),
                    "--duration",
                    str(math.ceil(settings.seconds)),
                    "--rate",
                    str(PY_SPY_RATE),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    *(["--gil"] if os.environ.get("BENCH_PYSPY_GIL") else []),
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        )

    try:
        found = measure(ledger, settings, accounts, key_prefix, 0, on_start=launch)
    finally:
        for spy in spies:
            _finish_py_spy(spy, settings.seconds + 30)
    print(f"py-spy profile of the ledger window: {out}")
    return found


def _finish_py_spy(spy: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        _, err = spy.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop(spy, 5)
        return
    if spy.returncode != 0:
        print(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace').strip()}")


def add_ledger_internals(
    measurements: Sequence[Measurement], data_dir: Path, log_path: Path
) -> None:
    for m in measurements:
        if m.server == "ledger":
            start, end = m.window
            m.journal = ledger_stats.journal_window(data_dir / "ledger.db", start, end)
            m.handler_ms = ledger_stats.handler_times_ms(log_path, start, end)


# --- summary and report ---------------------------------------------------------


def _median(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else math.nan


def summarize(measurements: Sequence[Measurement], server: str) -> dict[str, Any]:
    ms = [m for m in measurements if m.server == server and m.round > 0]
    errors: Counter[str] = Counter()
    for m in ms:
        errors.update(m.result.errors)
    out = {
        "calls_per_s": _round(_median([m.result.throughput for m in ms]), 1),
        "p50_ms": _round(_median([m.result.percentile_ms(0.5) for m in ms])),
        "p99_ms": _round(_median([m.result.percentile_ms(0.99) for m in ms])),
        "server_cpu_cores": _round(_median([m.server_cpu for m in ms])),
        "client_cpu_cores": _round(_median([m.client_cpu for m in ms])),
        "errors": dict(errors),
    }
    journals = [m.journal for m in ms if m.journal is not None]
    if journals:
        out["commits_per_s"] = _round(
            _median([j.commits / m.result.window_s for m, j in zip(ms, journals, strict=True)]), 1
        )
        out["group_size"] = _round(_median([j.group_size for j in journals]), 2)
        out["handler_p50_ms"] = _round(_median([loadgen.percentile(m.handler_ms, 0.5) for m in ms]))
        out["handler_p99_ms"] = _round(
            _median([loadgen.percentile(m.handler_ms, 0.99) for m in ms])
        )
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


_ROW = "{:<7} {:<7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8}"


def _print_measurement(m: Measurement) -> None:
    r = m.result
    label = str(m.round) if m.round else "prof"
    print(
        _ROW.format(
            label,
            m.server,
            _fmt(r.throughput),
            _fmt(r.percentile_ms(0.5), 2),
            _fmt(r.percentile_ms(0.99), 2),
            sum(r.errors.values()),
            _fmt(m.server_cpu, 2),
            _fmt(m.client_cpu, 2),
        ),
        flush=True,
    )


def print_header(settings: Settings, tmp: Path) -> None:
    print(
        f"loyalty-ledger Earn benchmark: nproc={os.cpu_count()}, python {sys.version.split()[0]}, "
        f"clients={settings.clients}, channels={settings.channels}, "
        f"window={settings.seconds:g} s after {settings.warmup:g} s warm-up, "
        f"rounds={settings.rounds}, accounts={settings.accounts}"
    )
    overrides = " ".join(f"{k}={v}" for k, v in sorted(procs.ledger_overrides().items()))
    print(f"server environment overrides: {overrides or 'none'}")
    print(f"temp directory: {tmp}", flush=True)


def print_storage(storage: dict[str, Any], seconds: float) -> None:
    print(
        f"\nraw storage ceiling (sqlite3, WAL, synchronous=FULL, {storage['filesystem']}, "
        f"{seconds:g} s each):"
    )
    print(f"  one commit per row      {storage['commit_per_row_rows_s']:>10.1f} rows/s")
    print(
        f"  one commit per {STORAGE_BATCH} rows  "
        f"{storage[f'commit_per_{STORAGE_BATCH}_rows_rows_s']:>10.1f} rows/s",
        flush=True,
    )


def print_table_header() -> None:
    print("\nper run (window only; cpu = cores used during the window):")
    print(
        _ROW.format(
            "round", "server", "calls/s", "p50 ms", "p99 ms", "errors", "srv cpu", "cli cpu"
        ),
        flush=True,
    )


def print_summary(summary: dict[str, Any]) -> None:
    echo, ledger = summary["echo"], summary["ledger"]
    print(f"\nmedians over {summary['settings']['rounds']} round(s):")
    print(
        f"  {'server':<7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'srv cpu':>8} {'cli cpu':>8}"
    )
    for name, s in (("echo", echo), ("ledger", ledger)):
        print(
            f"  {name:<7} {_fmt(s['calls_per_s']):>9} {_fmt(s['p50_ms'], 2):>8} "
            f"{_fmt(s['p99_ms'], 2):>8} {_fmt(s['server_cpu_cores'], 2):>8} "
            f"{_fmt(s['client_cpu_cores'], 2):>8}"
        )
    verdict = "meets" if summary["ratio"] >= TARGET_RATIO else "BELOW"
    print(
        f"  throughput ratio ledger/echo: {summary['ratio']:.3f} "
        f"({verdict} target >= {TARGET_RATIO})"
    )
    print(
        "\nledger internals per window (journal: entries sharing a commit timestamp; "
        "log: handler time):"
    )
    print(
        f"  {'round':<6} {'commits/s':>10} {'entries/commit':>15} {'handler p50 ms':>15} "
        f"{'handler p99 ms':>15}"
    )
    for run in summary["runs"]:
        if "commits" in run:
            print(
                f"  {run['round'] or 'prof'!s:<6} {run['commits_per_s']:>10.1f} "
                f"{run['group_size']:>15.2f} {_fmt(run['handler_p50_ms'], 2):>15} "
                f"{_fmt(run['handler_p99_ms'], 2):>15}"
            )
    v = summary["verify"]
    print(
        f"\njournal verify: exit {v['exit_code']}, {v['entries']} entries; "
        f"acknowledged Earns: {v['acknowledged_earns']}; "
        f"ledger errors: {v['ledger_errors'] or 'none'}; "
        f"ledger server exit code: {v['server_exit_code']}"
    )
    print("RESULT:", "OK" if summary["ok"] else "FAILED", flush=True)


# --- main -------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(settings: Settings) -> dict[str, Any]:
    key_prefix = "b" + secrets.token_hex(4)
    with workdir(settings) as tmp:
        print_header(settings, tmp)
        storage = measure_storage(tmp, settings.storage_seconds)
        print_storage(storage, settings.storage_seconds)
        data_dir, log_path = tmp / "ledger-data", tmp / "ledger-server.log"
        with procs.echo_server() as echo, procs.ledger_server(data_dir, log_path) as ledger:
            accounts = loadgen.open_accounts(ledger.target, settings.accounts, f"{key_prefix}.open")
            print(
                f"opened {len(accounts)} accounts; echo on {echo.target}, ledger on {ledger.target}"
            )
            print_table_header()
            measurements = run_rounds(echo, ledger, settings, accounts, key_prefix)
            if settings.py_spy is not None:
                profiled = profile_ledger(ledger, settings, accounts, key_prefix, settings.py_spy)
                measurements += [profiled] if profiled else []
            server_exit = procs.stop(ledger.proc)
        add_ledger_internals(measurements, data_dir, log_path)
        verified = ledger_stats.verify(data_dir)
        if verified.exit_code != 0:
            print(verified.output)
        return build_summary(settings, storage, measurements, verified, server_exit)


def build_summary(
    settings: Settings,
    storage: dict[str, Any],
    measurements: Sequence[Measurement],
    verified: ledger_stats.VerifyResult,
    server_exit: int,
) -> dict[str, Any]:
    ledger_runs = [m for m in measurements if m.server == "ledger"]
    errors: Counter[str] = Counter()
    for m in ledger_runs:
        errors.update(m.result.errors)
    acknowledged = sum(m.result.ok_total for m in ledger_runs)
    echo, ledger = summarize(measurements, "echo"), summarize(measurements, "ledger")
    ok = (
        not errors
        and verified.exit_code == 0
        and verified.entries is not None
        and verified.entries >= acknowledged
    )
    return {
        "benchmark": "earn",
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "settings": {k: getattr(settings, k) for k in DEFAULTS},
        "server_env": procs.ledger_overrides(),
        "storage": storage,
        "echo": echo,
        "ledger": ledger,
        "ratio": round(ledger["calls_per_s"] / echo["calls_per_s"], 3)
        if echo["calls_per_s"]
        else 0.0,
        "target_ratio": TARGET_RATIO,
        "runs": [m.as_dict() for m in measurements],
        "verify": {
            "exit_code": verified.exit_code,
            "entries": verified.entries,
            "acknowledged_earns": acknowledged,
            "ledger_errors": dict(errors),
            "server_exit_code": server_exit,
        },
        "ok": ok,
    }


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary = run(settings)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and temp directory cleaned up", file=sys.stderr)
        return 130
    except (procs.ServerError, grpc.RpcError, OSError, subprocess.SubprocessError) as err:
        print(f"setup failed: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    line = json.dumps(summary, sort_keys=True)
    if settings.json_path is not None:
        settings.json_path.write_text(line + "\n")
    print(line)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
