"""Benchmark of the security access report (issue #7): generation time and
peak memory over a large access log, against a ceiling measured in the
same run: a bare Python scan of the same rows (SELECT in time order, every
column touched, nothing computed).

The access log is seeded directly (one multi-row INSERT per 10,000 rows;
the report reads rows, it does not re-verify hashes): 250 channel
principals and 40 staff, 100,000 members, 30 days; 2% staff reads of
personal data, 1% denials, one planted bulk reader. The report then runs
in a child process (``--child``) so its peak RSS is its own.

Usage: .venv/bin/python bench/bench_reports.py [--records 1000000]
Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_US = 1_793_491_200_000_000  # 2026-11-01T00:00:00Z
SPAN_US = 30 * 86_400_000_000
COLUMNS = (
    "seq, time_us, request_id, principal, role, method, decision, reason, purpose,"
    " member_account_id, fields, prev_hash, hash"
)


def _seed(path: Path, records: int) -> None:
    from ledger.storage.database import open_database
    from ledger.storage.migrate import upgrade

    db = open_database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    rng = random.Random(7)
    members = [f"mbr_{i:026d}" for i in range(100_000)]
    conn = sqlite3.connect(path)
    digest = os.urandom(32)
    rows = []
    for seq in range(1, records + 1):
        t = START_US + seq * SPAN_US // records
        roll = rng.random()
        if roll < 0.01:
            row = (
                f"probe-{rng.randrange(20)}",
                "channel",
                "/loyalty.members.v1.MemberService/GetMember",
                "deny",
                "role: channel may not call",
                "",
                "",
                "",
            )
        elif roll < 0.03:
            member = rng.choice(members)
            staff = "agent-bulk" if roll < 0.012 else f"agent-{rng.randrange(40)}"
            row = (
                staff,
                "member_service",
                "/loyalty.members.v1.MemberService/GetMember",
                "allow",
                "",
                "customer_support",
                member,
                "phone,email",
            )
        else:
            member = rng.choice(members)
            method = rng.choice(("Earn", "Redeem", "GetBalance"))
            row = (
                f"pos-{rng.randrange(250)}",
                "channel",
                f"/loyalty.ledger.v1.LedgerService/{method}",
                "allow",
                "",
                "",
                member,
                "",
            )
        principal, role, method, decision, reason, purpose, member, fields = row
        rows.append(
            (
                seq,
                t,
                f"r{seq}",
                principal,
                role,
                method,
                decision,
                reason,
                purpose,
                member,
                fields,
                digest,
                digest,
            )
        )
        if len(rows) == 10_000:
            conn.executemany(
                f"INSERT INTO access_log ({COLUMNS}) VALUES ({', '.join('?' * 13)})", rows
            )
            rows.clear()
    if rows:
        conn.executemany(f"INSERT INTO access_log ({COLUMNS}) VALUES ({', '.join('?' * 13)})", rows)
    conn.execute("UPDATE access_head SET seq = ?", (records,))
    conn.commit()
    conn.close()


def _child(path: Path, what: str) -> None:
    """One measurement in this process; prints seconds and peak RSS (MiB)."""
    start = time.perf_counter()
    if what == "report":
        from ledger.reports.access_report import build_access_report
        from ledger.reports.render import render_html
        from ledger.storage.database import open_database

        db = open_database(f"sqlite:///{path}")
        report = build_access_report(
            db, from_us=START_US, to_us=START_US + SPAN_US + 1, origin="bench/access", now_us=0
        )
        html = render_html(report)
        extra = {"findings": len(report["findings"]), "html_bytes": len(html)}
    else:  # the ceiling: every row, every column, nothing computed
        conn = sqlite3.connect(path)
        n = 0
        for row in conn.execute(
            "SELECT * FROM access_log WHERE time_us >= ? AND time_us < ? ORDER BY seq",
            (START_US, START_US + SPAN_US + 1),
        ):
            n += len(row)
        extra = {"cells": n}
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, **extra}))


def _measure(path: Path, what: str) -> dict[str, float]:
    out = (
        subprocess.run(
            [sys.executable, __file__, "--child", what, "--db", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("report", "scan"))
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    if args.child:
        _child(args.db, args.child)
        return 0
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ledger.db"
        t = time.perf_counter()
        _seed(path, args.records)
        seeded = time.perf_counter() - t
        scan = _measure(path, "scan")
        report = _measure(path, "report")
    ratio = scan["seconds"] / report["seconds"]
    print(f"seeded {args.records:,} access-log records in {seeded:.1f} s")
    print(f"bare scan (ceiling):  {scan['seconds']:7.1f} s  peak {scan['peak_mib']:6.0f} MiB")
    print(
        f"access report + HTML: {report['seconds']:7.1f} s  peak {report['peak_mib']:6.0f} MiB"
        f"  ({report['findings']} findings, {report['html_bytes']:,} bytes of HTML)"
    )
    print(f"throughput ratio report/scan: {ratio:.3f}")
    print(
        json.dumps(
            {
                "benchmark": "reports",
                "records": args.records,
                "scan": scan,
                "report": report,
                "ratio": round(ratio, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
