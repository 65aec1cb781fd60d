"""Benchmark of the program rules (issue #6): does earning stay fast as
members accumulate lots?

Every earn creates a lot (an account row); a member with three purchases a
month and 24-month expiry carries ~70 live lots. This drives the appender
in-process (no gRPC: the ledger's own cost) with Earns spread over
``--members`` members, in rounds that each add ``--per-round`` lots per
member, plus one Redeem per member per round (which walks the lots), and
reports earns/s per round against a ceiling measured in the same run: raw
SQLite inserts of the same rows (entry, posting, account row) in the same
batch size, durable (synchronous=FULL, WAL).

Usage: .venv/bin/python bench/bench_lots.py [--members 200] [--rounds 4] [--per-round 20]
Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.appender import Appender  # noqa: E402
from ledger.commands import (  # noqa: E402
    Earn,
    Enroll,
    EntryDetails,
    Redeem,
    RequestMeta,
    SealedMember,
    new_member_account_id,
)
from ledger.program.config import parse_program  # noqa: E402
from ledger.storage.database import open_database  # noqa: E402
from ledger.storage.migrate import upgrade  # noqa: E402

_keys = itertools.count()


def _meta() -> RequestMeta:
    return RequestMeta("bench-pos", f"bench-{next(_keys):012d}", b"f" * 32)


def _render(outcome: object) -> bytes:
    return b""


async def _ledger(members: int, rounds: int, per_round: int, tmp: Path) -> list[float]:
    db = open_database(f"sqlite:///{tmp / 'ledger.db'}")
    upgrade(db)
    program = parse_program({"version": 1, "expiry": {"policy": "months", "months": 24}})
    appender = Appender(db=db, program=program)
    try:
        accounts = [new_member_account_id() for _ in range(members)]
        sealed = SealedMember(1, 1, b"bench-wrapped-key", (), ())
        await asyncio.gather(
            *(appender.append(Enroll(_meta(), a, sealed, _render)) for a in accounts)
        )
        rates = []
        for _ in range(rounds):
            earns = [
                Earn(_meta(), accounts[i % members], 5, EntryDetails(), _render)
                for i in range(members * per_round)
            ]
            start = time.perf_counter()
            await asyncio.gather(*(appender.append(c) for c in earns))
            await asyncio.gather(
                *(appender.append(Redeem(_meta(), a, 7, EntryDetails(), _render)) for a in accounts)
            )
            rates.append(len(earns) / (time.perf_counter() - start))
        return rates
    finally:
        appender.close()
        db.dispose()


def _ceiling(rows: int, batch: int, tmp: Path) -> float:
    """Raw inserts of what one earn writes, committed ``batch`` at a time."""
    conn = sqlite3.connect(tmp / "ceiling.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, body BLOB, hash BLOB)")
    conn.execute(
        "CREATE TABLE p (seq INTEGER, idx INTEGER, a TEXT, b TEXT, n INTEGER,"
        " PRIMARY KEY (seq, idx))"
    )
    conn.execute("CREATE TABLE acc (id TEXT PRIMARY KEY, owner TEXT, balance INTEGER)")
    conn.execute("CREATE INDEX acc_owner ON acc (owner)")
    body, digest = os.urandom(160), os.urandom(32)
    start = time.perf_counter()
    for first in range(0, rows, batch):
        conn.execute("BEGIN IMMEDIATE")
        n = range(first, min(rows, first + batch))
        conn.executemany("INSERT INTO e VALUES (?, ?, ?)", [(i, body, digest) for i in n])
        conn.executemany(
            "INSERT INTO p VALUES (?, 0, 'program:issued', ?, 5)", [(i, f"m/lot/{i}") for i in n]
        )
        conn.executemany(
            "INSERT INTO acc VALUES (?, ?, 5)", [(f"m{i % 200}/lot/{i}", f"m{i % 200}") for i in n]
        )
        conn.execute("COMMIT")
    conn.close()
    return rows / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rates = asyncio.run(_ledger(args.members, args.rounds, args.per_round, tmp))
        ceiling = _ceiling(args.members * args.per_round, 128, tmp)
    print("round  lots/member  earns/s  ratio to raw inserts")
    for i, rate in enumerate(rates, 1):
        print(f"{i:5d}  {i * args.per_round:11d}  {rate:7.0f}  {rate / ceiling:.3f}")
    print(f"raw SQLite inserts (same rows, 128 per commit): {ceiling:.0f} rows/s")
    slowdown = rates[-1] / rates[0]
    print(f"last round / first round: {slowdown:.2f} (1.0: no slowdown as lots accumulate)")
    print(
        json.dumps(
            {
                "benchmark": "lots",
                "earns_per_s": [round(r, 1) for r in rates],
                "median_earns_per_s": round(statistics.median(rates), 1),
                "ceiling_rows_per_s": round(ceiling, 1),
                "ratio": round(statistics.median(rates) / ceiling, 3),
                "last_over_first": round(slowdown, 3),
                "settings": vars(args),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
