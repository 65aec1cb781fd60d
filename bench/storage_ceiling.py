"""Raw storage ceiling: how fast plain sqlite3 can durably append rows here.

A fresh database per mode, configured like the ledger's engine
(journal_mode=WAL, synchronous=FULL, BEGIN IMMEDIATE). One table shaped like
what an Earn stores: sequence, time, kind, channel, two 32-byte hashes, and
a ~170-byte response blob (the idempotency record). Rows are appended for
``seconds`` seconds, committing after every ``batch`` rows; the result is
rows per second. With batch=1 this is about the disk's fsync rate; with a
larger batch it shows what group commit can reach. The ledger writes more
per Earn (five tables, indexes, balance and head updates), so this is an
upper bound, not a target.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    response BLOB NOT NULL
)
"""
_INSERT = "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)"
_RESPONSE = os.urandom(170)

Row = tuple[int, int, str, str, bytes, bytes, bytes]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit; we BEGIN ourselves
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(_SCHEMA)
    return conn


def _rows(first_seq: int, count: int) -> list[Row]:
    now_us = time.time_ns() // 1000
    return [
        (seq, now_us, "earn", "bench-pos", os.urandom(32), os.urandom(32), _RESPONSE)
        for seq in range(first_seq, first_seq + count)
    ]


def rows_per_second(path: Path, *, batch: int, seconds: float) -> float:
    """Append rows to a new database at ``path`` for ``seconds``; commit every ``batch``."""
    conn = _connect(path)
    try:
        written = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            rows = _rows(written + 1, batch)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
            written += batch
        return written / (time.perf_counter() - started)
    finally:
        conn.close()


def filesystem_of(path: Path) -> str:
    """The type and mount point of the filesystem holding ``path`` (from /proc/mounts)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown filesystem"
    resolved = str(path.resolve())
    best_mount, best_type = "", "?"
    for line in mounts:
        _, mount, fstype, *_ = line.split()
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best_mount):
            best_mount, best_type = mount, fstype
    return f"{best_type} at {best_mount or '?'}"
