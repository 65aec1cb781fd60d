"""The secure default against a bare TLS echo: Earn and GetBalance, same client.

What users run is measured: the ledger as ``loyalty-ledger serve`` starts it
(TLS, bearer tokens, durable SQLite, ``--workers`` at its default, the core
count) against the fastest bare grpcio echo of the same messages over TLS,
in both its forms (grpc.aio, and the thread-pool server with 16 threads);
the ratio is taken against the faster echo. Same load generator, same
request bytes, same machine, same run.

One run (``python bench/bench_serve.py``, or ``make bench``):

1. Storage ceiling: raw sqlite3 inserts (WAL, synchronous=FULL), committing
   every 64 rows (bench/storage_ceiling.py).
2. Development certificates and a channel token (the ledger's own key).
3. Servers, each in its own process group, on 127.0.0.1: echo (aio, TLS),
   echo (16 threads, TLS) and the ledger.
4. ``--accounts`` members opened and given points (OpenAccount + Earn).
5. ``--rounds`` rounds: for Earn, then GetBalance, measure each echo and
   the ledger (``--clients`` closed-loop clients over ``--channels``
   connections). Medians over rounds.
6. Earn latency at half load: open-loop at half the ledger's median Earn
   throughput; p50/p99 from the scheduled start.
7. The ledger stops (SIGTERM), ``loyalty-ledger verify`` must pass and the
   journal must hold every acknowledged Earn.

Prints a table of ratios with the core count; ``--json`` writes the summary.
``--insecure-extra`` adds a labelled plaintext/no-auth ledger run (never the
headline). ``--py-spy FILE`` records one extra Earn window of the ledger
with ``py-spy --gil --subprocesses``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen
import procs
import storage_ceiling

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {"earn": 0.5, "balance": 0.6}
P99_TARGET_MS = 25.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--workers", default="", help="serve --workers N (default: serve's default)")
    p.add_argument("--quick", action="store_true", help="1 round of 3 s, 300 accounts")
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.add_argument("--insecure-extra", action="store_true", help="labelled plaintext extra run")
    p.add_argument("--py-spy", type=Path, help="profile one extra ledger window here")
    p.add_argument("--py-spy-op", default="earn", choices=("earn", "balance", "half"))
    p.add_argument("--tmp-dir", type=Path, default=None)
    p.add_argument(
        "--postgres",
        action="store_true",
        help="also Earn on a durable throwaway PostgreSQL cluster with --pg-workers, "
        "against pgbench TPC-B on the same cluster",
    )
    p.add_argument("--pg-workers", default="1,2,4", help="worker counts for the PostgreSQL runs")
    p.add_argument("--pgbench-clients", type=int, default=8)
    p.add_argument("--pgbench-scale", type=int, default=10)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.accounts = 1, 3.0, 1.0, 300
    return args


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (from /proc)."""
    total = procs.cpu_seconds(pid) or 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return total
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            total += tree_cpu_seconds(int(child))
    return total


def measure(
    server: procs.Server,
    op: str,
    args: argparse.Namespace,
    accounts: list[str],
    creds: loadgen.Creds | None,
    tag: str,
    rate: float | None = None,
) -> dict[str, Any]:
    marks: dict[str, float] = {}

    def start() -> None:
        marks["cpu0"], marks["cli0"], marks["t0"] = (
            tree_cpu_seconds(server.pid),
            time.process_time(),
            time.perf_counter(),
        )

    def end() -> None:
        wall = time.perf_counter() - marks["t0"]
        marks["srv"] = (tree_cpu_seconds(server.pid) - marks["cpu0"]) / wall
        marks["cli"] = (time.process_time() - marks["cli0"]) / wall

    result = loadgen.run_load(
        server.target,
        clients=args.clients,
        channels=args.channels,
        warmup=args.warmup,
        seconds=args.seconds,
        accounts=accounts,
        key_prefix=f"{tag}.{server.name}.{op}",
        on_start=start,
        on_end=end,
        op=op,
        creds=creds,
        rate=rate,
    )
    row = {
        "server": server.name,
        "op": op,
        "calls_per_s": round(result.throughput, 1),
        "p50_ms": round(result.percentile_ms(0.5), 2),
        "p99_ms": round(result.percentile_ms(0.99), 2),
        "errors": dict(result.errors),
        "ok_total": result.ok_total,
        "server_cpu_cores": round(marks.get("srv", float("nan")), 2),
        "client_cpu_cores": round(marks.get("cli", float("nan")), 2),
    }
    if rate:
        row["offered_per_s"] = round(rate, 1)
    print(
        f"  {tag:<8} {server.name:<12} {op:<8} {row['calls_per_s']:>9.1f}/s "
        f"p50 {row['p50_ms']:>7.2f} ms  p99 {row['p99_ms']:>7.2f} ms  "
        f"srv {row['server_cpu_cores']:.2f}  cli {row['client_cpu_cores']:.2f}  "
        f"errors {sum(result.errors.values())} {dict(result.errors) if result.errors else ''}",
        flush=True,
    )
    return row


def _median(rows: list[dict[str, Any]], server: str, op: str, key: str) -> float:
    values = [r[key] for r in rows if r["server"] == server and r["op"] == op]
    return statistics.median(values) if values else float("nan")


def _token(data_dir: Path) -> str:
    from access.principal import Role
    from access.tokens import TokenIssuer, load_or_create_signing_key

    key = load_or_create_signing_key(data_dir / "keys" / "token-signing.pem")
    return (
        TokenIssuer(key)
        .issue(
            subject="bench-till-1", role=Role.CHANNEL, channel=loadgen.CHANNEL_ID, ttl_seconds=7200
        )
        .token
    )


def _verify(data_dir: Path, database_url: str = "") -> dict[str, Any]:
    started = time.perf_counter()
    where = ["--database-url", database_url] if database_url else []
    proc = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "verify", "--data-dir", str(data_dir), *where],
        cwd=REPO,
        env=procs.child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    entries = 0
    for word in proc.stdout.split():
        if word.isdigit():
            entries = max(entries, int(word))
    return {
        "ok": proc.returncode == 0,
        "seconds": round(time.perf_counter() - started, 2),
        "output": proc.stdout.strip()[-400:],
        "journal_entries": entries,
    }


def _journal_entries(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "ledger.db") as conn:
        return int(conn.execute("SELECT count(*) FROM journal_entries").fetchone()[0])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from access.certs import make_dev_certs

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=args.tmp_dir))
    try:
        cores = os.cpu_count() or 1
        print(
            f"bench_serve: {cores} cores, Python {platform.python_version()}, "
            f"{args.clients} clients over {args.channels} connections, {args.rounds} round(s) "
            f"of {args.seconds:g} s (+{args.warmup:g} s warm-up), {args.accounts} accounts",
            flush=True,
        )
        storage = storage_ceiling.rows_per_second(tmp / "ceiling.db", batch=64, seconds=2.0)
        print(f"  raw sqlite3 inserts, commit every 64 rows: {storage:,.0f} rows/s", flush=True)
        make_dev_certs(tmp / "certs")
        cert, key = tmp / "certs" / "server.pem", tmp / "certs" / "server.key"
        ca = (tmp / "certs" / "ca.pem").read_bytes()
        data_dir = tmp / "ledger-data"
        creds = loadgen.Creds(ca, _token(data_dir))
        extra = ["--workers", args.workers] if args.workers else []
        tls_args = ["--tls", str(cert), str(key)]
        rows: list[dict[str, Any]] = []
        with (
            procs.echo_server("echo-aio", tls_args, ca) as echo_aio,
            procs.echo_server("echo-thread", ["--threads", "16", *tls_args], ca) as echo_thr,
            procs.ledger_server(
                data_dir, tmp / "ledger.log", tls=(cert, key, ca), extra=extra
            ) as ledger,
        ):
            accounts = loadgen.open_accounts(
                ledger.target, args.accounts, f"acct-{os.getpid()}", creds=creds, seed=1
            )
            echo_accounts = accounts
            for n in range(1, args.rounds + 1):
                for op in ("earn", "balance"):
                    for server in (echo_aio, echo_thr):
                        rows.append(measure(server, op, args, echo_accounts, creds, f"r{n}"))
                    rows.append(measure(ledger, op, args, accounts, creds, f"r{n}"))
            half = args.half_rate = _median(rows, "ledger", "earn", "calls_per_s") / 2
            latency = measure(ledger, "earn", args, accounts, creds, "half", rate=half)
            profile = None
            if args.py_spy:
                profile = _profile(ledger, args, accounts, creds)
            acknowledged = sum(
                r["ok_total"] for r in rows if r["server"] == "ledger" and r["op"] == "earn"
            )
            acknowledged += latency["ok_total"] + args.accounts
            exit_code = procs.stop(ledger.proc)
        verified = _verify(data_dir)
        entries = _journal_entries(data_dir)
        verified["journal_entries"] = entries
        verified["acknowledged_earns"] = acknowledged
        verified["nothing_lost"] = entries >= acknowledged
        insecure = _insecure_extra(args, tmp) if args.insecure_extra else None
        summary = _summary(args, cores, storage, rows, latency, verified, exit_code, insecure)
        summary["profile"] = profile
        if args.postgres:
            summary["postgres"] = run_postgres(args, tmp, (cert, key, ca))
        return summary
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pgbench_tps(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("tps =") and "without initial" in line:
            return float(line.split()[2])
    raise RuntimeError(f"pgbench printed no tps line: {output[-400:]}")


def run_postgres(
    args: argparse.Namespace, tmp: Path, tls: tuple[Path, Path, bytes]
) -> dict[str, Any]:
    """Earn with N workers on a durable PostgreSQL cluster, against pgbench
    TPC-B (the default script) on the same cluster, same run."""
    from tests.support.postgres import PostgresCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("  PostgreSQL not installed (make postgres): no PostgreSQL runs", flush=True)
        return {"skipped": "initdb not found"}
    cluster = PostgresCluster(bin_dir, durable=True)
    cluster.start()
    try:
        bench_db = cluster.create_database().rsplit("/", 1)[1]
        cluster.pgbench(bench_db, "-i", "-q", "-s", str(args.pgbench_scale))
        tps = []
        for _ in range(args.rounds):
            out = cluster.pgbench(
                bench_db, "-c", str(args.pgbench_clients), "-j", "2", "-T", str(int(args.seconds))
            )
            tps.append(_pgbench_tps(out))
            print(
                f"  pgbench TPC-B, {args.pgbench_clients} clients: {tps[-1]:,.0f} tps", flush=True
            )
        ceiling = statistics.median(tps)
        runs = {}
        for n in [int(x) for x in args.pg_workers.split(",") if x]:
            url = cluster.create_database()
            data_dir = tmp / f"pg-{n}"
            creds = loadgen.Creds(tls[2], _token(data_dir))
            extra = ["--database-url", url, "--workers", str(n)]
            rows = []
            with procs.ledger_server(
                data_dir, tmp / f"pg-{n}.log", tls=tls, extra=extra, name=f"ledger-pg-w{n}"
            ) as ledger:
                accounts = loadgen.open_accounts(
                    ledger.target, args.accounts, f"pg{n}-{os.getpid()}", creds=creds, seed=1
                )
                for r in range(1, args.rounds + 1):
                    rows.append(measure(ledger, "earn", args, accounts, creds, f"pg-r{r}"))
                exit_code = procs.stop(ledger.proc)
            earn = statistics.median(r["calls_per_s"] for r in rows)
            verified = _verify(data_dir, url)
            runs[str(n)] = {
                "workers": n,
                "earn_per_s": earn,
                "p50_ms": statistics.median(r["p50_ms"] for r in rows),
                "p99_ms": statistics.median(r["p99_ms"] for r in rows),
                "ratio_to_pgbench": round(earn / ceiling, 3),
                "errors": sum(sum(r["errors"].values()) for r in rows),
                "verify_ok": verified["ok"],
                "server_exit_code": exit_code,
            }
        return {
            "pgbench_tps": ceiling,
            "pgbench": f"TPC-B (default script), scale {args.pgbench_scale}, "
            f"{args.pgbench_clients} clients, 2 threads, durable cluster",
            "target": 0.6,
            "runs": runs,
        }
    finally:
        cluster.stop()


def _profile(
    ledger: procs.Server, args: argparse.Namespace, accounts: list[str], creds: loadgen.Creds
) -> str | None:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        print("  py-spy not installed: no profile", flush=True)
        return None
    spy = subprocess.Popen(
        [
            binary,
            "record",
            "--gil",
            "--subprocesses",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(int(args.seconds + args.warmup)),
            "--output",
            str(args.py_spy),
            "--pid",
            str(ledger.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if args.py_spy_op == "half":  # Earn at half load, open loop
        measure(ledger, "earn", args, accounts, creds, "prof", rate=args.half_rate)
    else:
        measure(ledger, args.py_spy_op, args, accounts, creds, "prof")
    spy.wait(60)
    return str(args.py_spy)


def _insecure_extra(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Labelled extra: plaintext, no credentials, against a plaintext echo."""
    print("  -- labelled extra: plaintext, --auth none (not what users run) --", flush=True)
    rows = []
    extra = ["--workers", args.workers] if args.workers else []
    with (
        procs.echo_server("echo-aio") as echo,
        procs.ledger_server(tmp / "insecure-data", tmp / "insecure.log", extra=extra) as ledger,
    ):
        accounts = loadgen.open_accounts(
            ledger.target, min(args.accounts, 500), f"insecure-{os.getpid()}", seed=1
        )
        for op in ("earn", "balance"):
            rows.append(measure(echo, op, args, accounts, None, "insecure"))
            rows.append(measure(ledger, op, args, accounts, None, "insecure"))
    return {
        op: {
            "ledger_per_s": _median(rows, "ledger", op, "calls_per_s"),
            "echo_per_s": _median(rows, "echo-aio", op, "calls_per_s"),
            "ratio": round(
                _median(rows, "ledger", op, "calls_per_s")
                / _median(rows, "echo-aio", op, "calls_per_s"),
                3,
            ),
        }
        for op in ("earn", "balance")
    }


def _summary(
    args: argparse.Namespace,
    cores: int,
    storage: float,
    rows: list[dict[str, Any]],
    latency: dict[str, Any],
    verified: dict[str, Any],
    exit_code: int,
    insecure: dict[str, Any] | None,
) -> dict[str, Any]:
    ops = {}
    for op in ("earn", "balance"):
        echo = {s: _median(rows, s, op, "calls_per_s") for s in ("echo-aio", "echo-thread")}
        best = max(echo, key=lambda s: echo[s])
        ledger = _median(rows, "ledger", op, "calls_per_s")
        ops[op] = {
            "ledger_per_s": ledger,
            "ledger_p50_ms": _median(rows, "ledger", op, "p50_ms"),
            "ledger_p99_ms": _median(rows, "ledger", op, "p99_ms"),
            "ledger_server_cpu_cores": _median(rows, "ledger", op, "server_cpu_cores"),
            "echo_per_s": echo,
            "ceiling": best,
            "ratio": round(ledger / echo[best], 3),
            "target": TARGETS[op],
            "errors": sum(
                sum(r["errors"].values()) for r in rows if r["server"] == "ledger" and r["op"] == op
            ),
        }
    return {
        "benchmark": "bench_serve",
        "cores": cores,
        "python": platform.python_version(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "secure_default": "TLS, bearer tokens, durable SQLite (synchronous=FULL)",
        "storage_ceiling_rows_per_s": round(storage),
        "ops": ops,
        "earn_at_half_load": latency,
        "verify": verified,
        "server_exit_code": exit_code,
        "insecure_extra": insecure,
        "runs": rows,
    }


def print_table(summary: dict[str, Any]) -> None:
    print()
    print(f"secure default vs bare TLS echo, {summary['cores']} cores (medians of rounds)")
    print(
        f"  {'op':<10} {'ledger/s':>9} {'echo aio/s':>11} {'echo thr/s':>11} {'ratio':>7} "
        f"{'target':>7} {'p50 ms':>8} {'p99 ms':>8} {'srv cpu':>8}"
    )
    for op, s in summary["ops"].items():
        print(
            f"  {op:<10} {s['ledger_per_s']:>9.0f} {s['echo_per_s']['echo-aio']:>11.0f} "
            f"{s['echo_per_s']['echo-thread']:>11.0f} {s['ratio']:>7.3f} {s['target']:>7.2f} "
            f"{s['ledger_p50_ms']:>8.1f} {s['ledger_p99_ms']:>8.1f} "
            f"{s['ledger_server_cpu_cores']:>8.2f}"
        )
    h = summary["earn_at_half_load"]
    print(
        f"  earn at half load ({h.get('offered_per_s', 0):.0f}/s offered): "
        f"{h['calls_per_s']:.0f}/s, p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms "
        f"(target p99 <= {P99_TARGET_MS:g} ms)"
    )
    v = summary["verify"]
    print(
        f"  verify: {'OK' if v['ok'] else 'FAILED'} in {v['seconds']} s; journal "
        f"{v['journal_entries']} entries >= {v['acknowledged_earns']} acknowledged: "
        f"{v['nothing_lost']}; server exit {summary['server_exit_code']}"
    )
    pg = summary.get("postgres")
    if pg and "runs" in pg:
        print(f"  PostgreSQL (durable): pgbench {pg['pgbench']}: {pg['pgbench_tps']:,.0f} tps")
        for n, r in pg["runs"].items():
            print(
                f"    Earn, --workers {n}: {r['earn_per_s']:,.0f}/s, "
                f"ratio {r['ratio_to_pgbench']:.3f} "
                f"(target {pg['target']}), p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"verify {'OK' if r['verify_ok'] else 'FAILED'}"
            )
    if summary.get("insecure_extra"):
        for op, s in summary["insecure_extra"].items():
            print(f"  [extra, plaintext, --auth none] {op}: ratio {s['ratio']}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    summary = run(args)
    print_table(summary)
    text = json.dumps(summary, indent=2, sort_keys=True)
    if args.json:
        args.json.write_text(text + "\n")
    pg_runs = (summary.get("postgres") or {}).get("runs", {}).values()
    bad = (
        not summary["verify"]["ok"]
        or not summary["verify"]["nothing_lost"]
        or any(s["errors"] for s in summary["ops"].values())
        or any(r["errors"] or not r["verify_ok"] for r in pg_runs)
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
