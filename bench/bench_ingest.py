"""Bulk paths: `loyalty-ledger import`, `verify` and `audit verify`, each
against a bare ceiling measured in the same run.

1. A history file of ``--lines`` operations (bench/history.py: the example
   program, members opened by alias, purchases priced by the earn rules,
   redemptions, two years of seasonal history).
2. **Ceiling, ingest**: plain sqlite3 reads the same file and appends each
   line as a row chained by SHA-256 (``hash = SHA-256(prev_hash || line)``),
   WAL, ``synchronous=FULL``, one commit per ``--batch`` rows.
3. **Ledger, ingest**: ``loyalty-ledger import`` (a subprocess, as an
   operator runs it) into a fresh durable SQLite ledger; its own lines/s.
4. **Ceiling, verify**: a bare SHA-256 loop over each journal entry's
   canonical bytes (docs/journal-format.md), read from that ledger; both
   cores allowed, so the ceiling is one core's loop (the loop is the
   ceiling per core; the ratio is against one core).
5. **Ledger, verify**: ``loyalty-ledger verify`` on that ledger, and
   ``audit verify`` of an ``audit export`` bundle of it; entries/s and
   peak RSS.

Usage: .venv/bin/python bench/bench_ingest.py [--lines 200000] [--json out.json]
Targets (issue #12): import >= 0.5x the chained inserts; verify and audit
verify >= 0.2x the SHA-256 loop, in memory that does not grow with the
journal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import history  # noqa: E402

PYTHON = sys.executable


def write_history(path: Path, count: int, end_us: int) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for line in history.lines(count, total=count, end_us=end_us):
            f.write(line + "\n")
            n += 1
    return n


def chained_inserts(source: Path, db_path: Path, batch: int) -> tuple[int, float]:
    """Rows per second of the bare chained append of every line."""
    started = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL,"
        " prev_hash BLOB NOT NULL, hash BLOB NOT NULL, body BLOB NOT NULL)"
    )
    prev = bytes(32)
    seq = 0
    rows: list[tuple[int, int, bytes, bytes, bytes]] = []
    sha256 = hashlib.sha256

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        rows.clear()

    with source.open("rb") as f:
        for line in f:
            seq += 1
            digest = sha256(prev + line).digest()
            rows.append((seq, time.time_ns() // 1000, prev, digest, line))
            prev = digest
            if len(rows) >= batch:
                flush()
    if rows:
        flush()
    conn.close()
    return seq, seq / (time.perf_counter() - started)


def _run(
    args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)
) -> tuple[str, float, float]:
    """Run a CLI; (stdout, wall seconds, that child's own peak RSS in MiB)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [PYTHON, "-m", "ledger.cli", *args], env=env, stdout=out, stderr=err, text=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode not in ok:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {stderr[-2000:]}")
    return stdout, wall, usage.ru_maxrss / 1024


def sha256_loop(data_dir: Path) -> tuple[int, float, int]:
    """Entries, seconds of a bare SHA-256 over each entry's canonical bytes
    (encoded beforehand, not timed), and total bytes."""
    from ledger.storage.database import open_database
    from ledger.storage.journal_reads import JournalReads, walk

    db = open_database(f"sqlite:///{data_dir / 'ledger.db'}", background_checkpoints=False)
    blobs = []
    try:
        with JournalReads(db.reader).snapshot() as conn:
            for stored in walk(conn):
                blobs.append(stored.entry.encode())
    finally:
        db.dispose()
    sha256 = hashlib.sha256
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for blob in blobs:
            sha256(blob).digest()
        best = min(best, time.perf_counter() - started)
    return len(blobs), best, sum(len(b) for b in blobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="build the ledger here and keep it")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    data_dir = args.keep or tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_LEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "protos")])
    env["LOYALTY_LEDGER_LOG_LEVEL"] = "warning"
    out: dict[str, Any] = {"cores": os.cpu_count(), "lines": args.lines}
    try:
        print(f"bench_ingest: {os.cpu_count()} cores, {args.lines:,} lines", flush=True)
        source = tmp / "history.jsonl"
        end_us = time.time_ns() // 1000
        lines = write_history(source, args.lines, end_us)
        out["file_mib"] = round(source.stat().st_size / 2**20, 1)
        rows, raw_rate = chained_inserts(source, tmp / "raw.db", args.batch)
        out["raw_chained_rows_per_s"] = round(raw_rate)
        print(f"  raw chained sqlite3 inserts: {rows:,} rows at {raw_rate:,.0f}/s", flush=True)

        program = str(ROOT / "examples" / "program.toml")
        command = ["import", "--data-dir", str(data_dir), "--program", program, str(source)]
        stdout, wall, _rss = _run(
            [*command, "--batch", str(args.batch)],  # the same commit size as the ceiling
            env,
            ok=(0, 1),  # 1: some redemptions refused (not enough points), as on a real till
        )
        found = re.search(r"in ([\d.]+) s \(([\d,]+) lines/s\)", stdout)
        added = re.search(r"(\d+) journal entries added", stdout)
        if not found or not added:
            raise RuntimeError(f"unexpected import report: {stdout!r}")
        import_rate = lines / float(found.group(1))
        out["import"] = {
            "lines_per_s": round(import_rate),
            "entries_added": int(added.group(1)),
            "wall_s": round(wall, 1),
            "ratio": round(import_rate / raw_rate, 3),
            "report": stdout.strip(),
        }
        print(f"  import: {stdout.strip()}", flush=True)
        print(f"  import ratio to chained inserts: {import_rate / raw_rate:.3f}", flush=True)

        entries, loop_s, nbytes = sha256_loop(data_dir)
        loop_rate = entries / loop_s
        out["sha256_loop"] = {"entries_per_s": round(loop_rate), "mib": round(nbytes / 2**20, 1)}
        print(
            f"  bare SHA-256 loop: {entries:,} entries ({nbytes / 2**20:.1f} MiB) "
            f"at {loop_rate:,.0f}/s",
            flush=True,
        )
        _, verify_s, verify_rss = _run(["verify", "--data-dir", str(data_dir)], env)
        verify_rate = entries / verify_s
        out["verify"] = {
            "entries_per_s": round(verify_rate),
            "wall_s": round(verify_s, 2),
            "peak_rss_mib": round(verify_rss),
            "ratio": round(verify_rate / loop_rate, 4),
        }
        print(
            f"  verify: {verify_s:.1f} s, {verify_rate:,.0f} entries/s, ratio "
            f"{verify_rate / loop_rate:.4f}, peak RSS {verify_rss:.0f} MiB",
            flush=True,
        )
        bundle = tmp / "bundle.jsonl"
        _run(["audit", "export", "--data-dir", str(data_dir), "--out", str(bundle)], env)
        keys = _run(["audit", "public-key", "--data-dir", str(data_dir)], env)[0].split()
        key_args = [a for k in keys if "+" in k for a in ("--key", k)]
        _, audit_s, audit_rss = _run(["audit", "verify", str(bundle), *key_args], env)
        audit_rate = entries / audit_s
        out["audit_verify"] = {
            "entries_per_s": round(audit_rate),
            "wall_s": round(audit_s, 2),
            "peak_rss_mib": round(audit_rss),
            "ratio": round(audit_rate / loop_rate, 4),
            "bundle_mib": round(bundle.stat().st_size / 2**20, 1),
        }
        print(
            f"  audit verify: {audit_s:.1f} s, {audit_rate:,.0f} entries/s, ratio "
            f"{audit_rate / loop_rate:.4f}, peak RSS {audit_rss:.0f} MiB",
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(out, indent=2) + "\n")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
