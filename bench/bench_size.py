"""Flat with size: per-operation latency as the journal grows.

One ledger is grown through the bulk path (ledger/bulk.py, what
``loyalty-ledger import`` runs: the appender in-process, group commits of
2,000) to each size in ``--sizes``, from bench/history.py's lines: the
example program (tiers, end-of-year expiry, pending points for the return
window, channel multipliers), purchases priced by the earn rules, four
channels (store till 60 %, app 25 %, mini-program 10 %, partner 5 %), one
redemption in six, two years of history with the November and December
peaks twice as busy as other months, and one new member per 20
operations (so members gather lots).

At each size the real server is started on it, as users run it (TLS,
tokens, durable SQLite, ``--workers`` default), and measured at a moderate
open-loop rate (``--rate`` calls/s, so latency is not queueing): Earn,
GetBalance, and an inclusion proof of a random entry. Then the server's
RSS. The table gives each p50/p99 and its ratio to the smallest size.

Usage: .venv/bin/python bench/bench_size.py [--sizes 100000,1000000] [--rate 200]
The issue's target is 10,000,000 entries within 1.2x of 100,000; this path
builds about 2,000-3,000 entries/s on 2 cores, so 10 M takes over an hour.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import grpc  # noqa: E402
import history  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
from loyalty.audit.v1 import audit_pb2 as apb  # noqa: E402
from loyalty.audit.v1 import audit_pb2_grpc  # noqa: E402

from access.certs import make_dev_certs  # noqa: E402
from access.principal import Role  # noqa: E402
from access.tokens import TokenIssuer, load_or_create_signing_key  # noqa: E402
from ledger.appender import Appender  # noqa: E402
from ledger.bulk import Importer  # noqa: E402
from ledger.config import ServerConfig  # noqa: E402
from ledger.keys.keyring import FileKeyring  # noqa: E402
from ledger.members.rotation import backfill_keys  # noqa: E402
from ledger.members.vault import MemberVault  # noqa: E402
from ledger.program.config import load_program  # noqa: E402
from ledger.storage.database import open_database  # noqa: E402
from ledger.storage.migrate import upgrade  # noqa: E402


class Builder:
    """Grows the ledger through the bulk path (ledger/bulk.py, what
    ``loyalty-ledger import`` runs) from bench/history.py's lines."""

    def __init__(self, data_dir: Path, total: int) -> None:
        config = ServerConfig(data_dir=data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_database(config.resolved_database_url(), background_checkpoints=False)
        upgrade(self.db)
        vault = MemberVault.for_keyring(FileKeyring.open(config.keyring_path))
        backfill_keys(self.db, vault, time.time_ns() // 1000)
        program = load_program(ROOT / "examples" / "program.toml")
        self.appender = Appender(
            db=self.db, max_batch=2000, vault=vault, program=program, max_points=1_000_000
        )
        self.importer = Importer(
            db=self.db,
            appender=self.appender,
            vault=vault,
            limit=1_000_000,
            clock=lambda: time.time_ns() // 1000,
        )
        self.total = total
        self.end_us = time.time_ns() // 1000
        self.done = 0  # history lines fed so far

    def grow(self, target: int) -> float:
        """Feed history until the journal holds ``target`` entries; entries/s."""
        started = time.perf_counter()
        before = self.importer.head()
        while self.importer.head() < target:
            count = max(2000, min(200_000, (target - self.importer.head()) * 21 // 20))
            self.importer.run(
                history.lines(count, first=self.done, total=self.total, end_us=self.end_us)
            )
            self.done += count
        return (self.importer.head() - before) / (time.perf_counter() - started)

    def members(self) -> list[str]:
        return list(self.importer.aliases.values())

    def close(self) -> None:
        self.appender.close()
        self.db.dispose()


def _token(data_dir: Path, role: Role, channel: str | None = None) -> str:
    key = load_or_create_signing_key(data_dir / "keys" / "token-signing.pem")
    return (
        TokenIssuer(key)
        .issue(subject=f"size-{role.value}", role=role, channel=channel, ttl_seconds=7200)
        .token
    )


def _proofs(target: str, ca: bytes, token: str, size: int, count: int) -> list[float]:
    creds = loadgen.Creds(ca, token)
    latencies = []
    with grpc.secure_channel(target, creds.channel_credentials()) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        stub.CreateCheckpoint(apb.CreateCheckpointRequest(log=apb.LOG_JOURNAL))
        rng = random.Random(size)
        for _ in range(count):
            request = apb.GetInclusionProofRequest(
                log=apb.LOG_JOURNAL, sequence=rng.randrange(1, size)
            )
            started = time.perf_counter()
            stub.GetInclusionProof(request)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _rss_mib(pid: int) -> float:
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def measure(
    data_dir: Path, tmp: Path, size: int, args: argparse.Namespace, members: list[str]
) -> dict[str, Any]:
    certs = tmp / "certs"
    cert, key, ca = certs / "server.pem", certs / "server.key", (certs / "ca.pem").read_bytes()
    creds = loadgen.Creds(ca, _token(data_dir, Role.CHANNEL, "bench-pos"))
    sample = random.Random(size).sample(members, min(len(members), 2000))
    out: dict[str, Any] = {"entries": size}
    with procs.ledger_server(data_dir, tmp / f"size-{size}.log", tls=(cert, key, ca)) as server:
        for op in ("earn", "balance"):
            result = loadgen.run_load(
                server.target,
                clients=16,
                channels=4,
                warmup=1.0,
                seconds=args.seconds,
                accounts=sample,
                key_prefix=f"size{size}.{op}.{os.getpid()}",
                op=op,
                creds=creds,
                rate=args.rate,
            )
            if result.errors:
                raise RuntimeError(f"{op} at {size}: {dict(result.errors)}")
            out[op] = {
                "p50_ms": round(result.percentile_ms(0.5), 2),
                "p99_ms": round(result.percentile_ms(0.99), 2),
            }
        proofs = _proofs(server.target, ca, _token(data_dir, Role.COMPLIANCE), size, args.proofs)
        ordered = sorted(proofs)
        out["proof"] = {
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(loadgen.percentile(ordered, 0.99), 2),
        }
        out["server_rss_mib"] = round(_rss_mib(server.pid), 1)
        procs.stop(server.proc)
    out["db_mib"] = round(sum(f.stat().st_size for f in data_dir.glob("ledger.db*")) / 2**20, 1)
    return out


def _measure_kept(data_dir: Path, tmp: Path, args: argparse.Namespace) -> int:
    """One row for a ledger grown earlier (``--keep``): measured when the
    machine is quiet, since growing 10 M entries takes over an hour."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(data_dir / "ledger.db")) as conn:
        (entries,) = conn.execute("SELECT count(*) FROM journal_entries").fetchone()
        members = [
            row[0]
            for row in conn.execute(
                "SELECT account_id FROM accounts"
                " WHERE owner = account_id AND account_id LIKE 'mbr_%'"
            )
        ]
    row = measure(data_dir, tmp, entries, args, members)
    row["members"] = len(members)
    print(f"  {json.dumps(row)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps([row], indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="open-loop calls/s per measurement"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--proofs", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="grow and keep the ledger in this directory")
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="measure the ledger already in --keep at its size, without growing it",
    )
    args = parser.parse_args()
    if args.measure_only and not args.keep:
        parser.error("--measure-only needs --keep DIR")
    tmp = Path(tempfile.mkdtemp(prefix="bench-size-"))
    builder: Builder | None = None
    data_dir = args.keep or tmp / "data"
    try:
        make_dev_certs(tmp / "certs")
        print(
            f"bench_size: {os.cpu_count()} cores; open loop {args.rate:g} calls/s, 16 clients",
            flush=True,
        )
        if args.measure_only:
            return _measure_kept(args.keep, tmp, args)
        sizes = [int(s) for s in args.sizes.split(",")]
        builder = Builder(data_dir, total=max(sizes) * 21 // 20)
        rows = []
        for size in sizes:
            # the builder's appender stays open while the server runs: it is
            # one more writer, and it rereads what the server changed
            rate = builder.grow(size)
            entries, members = builder.importer.head(), builder.members()
            print(
                f"  grown to {entries:,} entries ({len(members):,} members)"
                f" at {rate:,.0f} entries/s",
                flush=True,
            )
            row = measure(data_dir, tmp, entries, args, members)
            row["build_entries_per_s"] = round(rate)
            rows.append(row)
            print(f"  {json.dumps(row)}", flush=True)
        base = rows[0]
        print()
        print(
            f"{'entries':>11} {'earn p50/p99':>15} {'balance p50/p99':>16} {'proof p50/p99':>15}"
            f" {'rss MiB':>8} {'db MiB':>7}  ratio p99 to first (earn, balance, proof)"
        )
        for r in rows:
            ratios = ", ".join(
                f"{r[op]['p99_ms'] / base[op]['p99_ms']:.2f}" for op in ("earn", "balance", "proof")
            )
            print(
                f"{r['entries']:>11,} {r['earn']['p50_ms']:>7.1f}/{r['earn']['p99_ms']:<7.1f} "
                f"{r['balance']['p50_ms']:>7.1f}/{r['balance']['p99_ms']:<8.1f} "
                f"{r['proof']['p50_ms']:>7.2f}/{r['proof']['p99_ms']:<7.2f}"
                f" {r['server_rss_mib']:>8.0f} {r['db_mib']:>7.0f}  {ratios}"
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    finally:
        if builder is not None:
            builder.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
