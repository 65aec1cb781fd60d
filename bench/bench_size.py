"""Flat with size: per-operation latency as the journal grows.

One ledger is grown through the bulk path (the appender in-process, batches
of up to 2,000, no gRPC) to each size in ``--sizes``, with members as a
program has them: the example program (tiers, end-of-year expiry, pending
points for the return window, channel multipliers), purchases priced by
the earn rules, four channels (store till 60 %, app 25 %, mini-program
10 %, partner 5 %), one redemption in six, two years of simulated time
with the November and December peaks twice as busy as other months, and
about one member per 20 entries (so members gather lots).

At each size the real server is started on it, as users run it (TLS,
tokens, durable SQLite, ``--workers`` default), and measured at a moderate
open-loop rate (``--rate`` calls/s, so latency is not queueing): Earn,
GetBalance, and an inclusion proof of a random entry. Then the server's
RSS. The table gives each p50/p99 and its ratio to the smallest size.

Usage: .venv/bin/python bench/bench_size.py [--sizes 100000,1000000] [--rate 200]
The issue's target is 10,000,000 entries within 1.2x of 100,000; building
10 M entries through this path takes about 40 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
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

import grpc  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
from loyalty.audit.v1 import audit_pb2 as apb  # noqa: E402
from loyalty.audit.v1 import audit_pb2_grpc  # noqa: E402
from loyalty.ledger.v1 import ledger_pb2 as pb  # noqa: E402

from access.certs import make_dev_certs  # noqa: E402
from access.principal import Role  # noqa: E402
from access.tokens import TokenIssuer, load_or_create_signing_key  # noqa: E402
from ledger.appender import Appender  # noqa: E402
from ledger.config import ServerConfig  # noqa: E402
from ledger.keys.keyring import FileKeyring  # noqa: E402
from ledger.members.rotation import backfill_keys  # noqa: E402
from ledger.members.vault import MemberVault  # noqa: E402
from ledger.program.config import load_program  # noqa: E402
from ledger.service import messages as m  # noqa: E402
from ledger.storage.database import open_database  # noqa: E402
from ledger.storage.migrate import upgrade  # noqa: E402

CHANNELS = (("bench-pos", 60), ("app", 25), ("mini", 10), ("partner-cinema", 5))
CATEGORIES = ("grocery", "fresh", "apparel", "electronics", "coffee")
DAY_US = 86_400_000_000
SPAN_DAYS = 730


class SimClock:
    def __init__(self, now_us: int) -> None:
        self.now = now_us

    def __call__(self) -> int:
        return self.now


def _seasonal_days(rng: random.Random, n: int, end_us: int) -> list[int]:
    """``n`` simulated times over two years, November and December twice as busy."""
    out = []
    start = end_us - SPAN_DAYS * DAY_US
    while len(out) < n:
        t = start + int(rng.random() * SPAN_DAYS * DAY_US)
        month = time.gmtime(t // 1_000_000).tm_mon
        if month in (11, 12) or rng.random() < 0.5:
            out.append(t)
    return sorted(out)


async def grow(data_dir: Path, target: int, state: dict[str, Any]) -> float:
    """Append entries until the journal holds ``target``; returns entries/s."""
    config = ServerConfig(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(config.resolved_database_url(), background_checkpoints=False)
    upgrade(db)
    vault = MemberVault.for_keyring(FileKeyring.open(config.keyring_path))
    # as a server's first start does: every account has its data key from
    # the start, so a server on this ledger has no backfill scan to make
    backfill_keys(db, vault, time.time_ns() // 1000)
    program = load_program(ROOT / "examples" / "program.toml")
    end_us = state.setdefault("end_us", time.time_ns() // 1000)
    clock = SimClock(state.get("clock", end_us - SPAN_DAYS * DAY_US))
    appender = Appender(
        db=db, clock=clock, max_batch=2000, vault=vault, program=program, max_points=1_000_000
    )
    rng = random.Random(state.setdefault("seed", 7) + target)
    members: list[str] = state.setdefault("members", [])
    done = state.get("entries", 0)
    keys = state.get("keys", 0)
    started = time.perf_counter()
    try:
        need = target - done
        times = _seasonal_days(rng, need, end_us)
        weights = [w for _, w in CHANNELS]
        for first in range(0, need, 2000):
            chunk = times[first : first + 2000]
            clock.now = max(clock.now, chunk[-1])
            commands = []
            while len(members) < (done + first + len(chunk)) // 20 + 1:
                keys += 1
                request = pb.OpenAccountRequest(
                    idempotency_key=f"size-open-{keys:010d}",
                    context=pb.ChannelContext(channel_id="bench-pos"),
                )
                command = m.open_account_command(request, vault)
                members.append(command.account)
                commands.append(command)
            for _ in chunk:
                keys += 1
                channel = rng.choices(CHANNELS, weights)[0][0]
                context = pb.ChannelContext(
                    channel_id=channel, store_id=f"store-{rng.randrange(300):04d}"
                )
                member = rng.choice(members)
                if rng.random() < 1 / 6:
                    commands.append(
                        m.redeem_command(
                            pb.RedeemRequest(
                                idempotency_key=f"size-{keys:012d}",
                                context=context,
                                member_account_id=member,
                                points=rng.choice((50, 100, 200)),
                            ),
                            limit=1_000_000,
                        )
                    )
                    continue
                commands.append(
                    m.earn_command(
                        pb.EarnRequest(
                            idempotency_key=f"size-{keys:012d}",
                            context=context,
                            member_account_id=member,
                            purchase=pb.Money(
                                minor_units=rng.randrange(500, 60_000), currency_code="CNY"
                            ),
                            categories=[rng.choice(CATEGORIES)],
                        ),
                        limit=1_000_000,
                    )
                )
            results = await asyncio.gather(
                *(appender.append(c) for c in commands), return_exceptions=True
            )
            del results  # refusals (not enough points) leave no entry, as on a real till
        state["clock"] = clock.now
        state["keys"] = keys
    finally:
        appender.close()
        with db.writer.connect() as conn:
            entries = conn.exec_driver_sql("SELECT seq FROM journal_head").scalar_one()
        db.dispose()
    built = int(entries) - done
    state["entries"] = int(entries)
    return built / (time.perf_counter() - started)


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
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-size-"))
    data_dir = args.keep or tmp / "data"
    try:
        make_dev_certs(tmp / "certs")
        print(
            f"bench_size: {os.cpu_count()} cores; open loop {args.rate:g} calls/s, 16 clients",
            flush=True,
        )
        state: dict[str, Any] = {}
        rows = []
        for size in [int(s) for s in args.sizes.split(",")]:
            rate = asyncio.run(grow(data_dir, size, state))
            print(
                f"  grown to {state['entries']:,} entries ({len(state['members']):,} members)"
                f" at {rate:,.0f} entries/s",
                flush=True,
            )
            row = measure(data_dir, tmp, state["entries"], args, state["members"])
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
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
