"""What the ledger itself recorded during a measurement window, read afterwards.

- From the journal (SQLite file, read after the server stopped): entries
  whose time falls in the window, and how many commits they took. The
  appender stamps every entry of one group commit with the same clock
  reading, so distinct ``time_us`` values = commits; entries / commits =
  average group size.
- From the server's JSON log (one line per call, written by the
  interceptor): the handler time of each Earn, i.e. the time a request
  thread spent inside the call, mostly waiting for its commit.
- ``verify``: ``python -m ledger.cli verify`` (hash chain and invariants).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from procs import REPO, child_env

VERIFY_TIMEOUT_S = 300.0
_ENTRIES_RE = re.compile(r"^ok: (\d+) entries", re.MULTILINE)


@dataclass(frozen=True)
class JournalWindow:
    entries: int
    commits: int

    @property
    def group_size(self) -> float:
        return self.entries / self.commits if self.commits else 0.0


@dataclass(frozen=True)
class VerifyResult:
    exit_code: int
    entries: int | None
    output: str


def journal_window(db_path: Path, start_wall: float, end_wall: float) -> JournalWindow:
    """Entries and commits whose timestamp lies in [start_wall, end_wall) (seconds)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        entries, commits = conn.execute(
            "SELECT count(*), count(DISTINCT time_us) FROM journal_entries"
            " WHERE time_us >= ? AND time_us < ?",
            (int(start_wall * 1e6), int(end_wall * 1e6)),
        ).fetchone()
    finally:
        conn.close()
    return JournalWindow(int(entries), int(commits))


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def handler_times_ms(log_path: Path, start_wall: float, end_wall: float) -> list[float]:
    """Logged durations of OK Earn calls that finished inside the window."""
    found: list[float] = []
    with log_path.open(errors="replace") as log:
        for line in log:
            if '"rpc"' not in line or "/Earn" not in line:
                continue
            try:
                record = json.loads(line)
                when = _timestamp(record["timestamp"])
            except (ValueError, KeyError):
                continue
            if record.get("status") == "OK" and start_wall <= when < end_wall:
                found.append(float(record["duration_ms"]))
    return found


def verify(data_dir: Path) -> VerifyResult:
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "verify", "--data-dir", str(data_dir)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT_S,
        check=False,
    )
    match = _ENTRIES_RE.search(done.stdout)
    output = (done.stdout + done.stderr).strip()
    return VerifyResult(done.returncode, int(match.group(1)) if match else None, output)
