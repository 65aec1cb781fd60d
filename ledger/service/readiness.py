"""Readiness: the health service says SERVING only while this process can do
its work, so a load balancer stops routing to a server that would refuse
every call, and routes to it again once it recovers, by itself.

What is probed, once a second (every quarter second while not ready):
- the process that writes (a single server, or the writer of a group):
  that the database takes a write transaction (SQLite: BEGIN IMMEDIATE on
  a connection of its own with a short timeout, so a database locked by
  someone else counts as unwritable; PostgreSQL: a transaction that reads
  the journal head and is not read-only, e.g. not a standby). The access
  log is in the same database, so this covers it too;
- a worker: that it reaches the database (a read), and that its link to
  the writer is up (ledger/service/writer_link.py; a lost link ends the
  worker anyway).
A failed probe sets every service NOT_SERVING and logs
``not_ready`` with the reason class (no data); the first good probe after
that sets SERVING again and logs ``ready``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
import structlog

from ledger import metrics
from ledger.storage.database import Database

log = structlog.get_logger("ledger.readiness")

INTERVAL_S = 1.0
RECOVERY_INTERVAL_S = 0.25
SQLITE_LOCK_TIMEOUT_S = 1.0
PG_STATEMENT_TIMEOUT_MS = 2000


def probe_writable(db: Database) -> str:
    """ "" when the database takes a write transaction; else why not (an
    exception class name, never its text, which may carry data)."""
    try:
        if db.is_sqlite:
            lite = sqlite3.connect(db.sqlite_path, timeout=SQLITE_LOCK_TIMEOUT_S)
            try:
                lite.isolation_level = None
                lite.execute("BEGIN IMMEDIATE")
                lite.execute("SELECT seq FROM journal_head WHERE id = 1").fetchall()
                lite.execute("ROLLBACK")
            finally:
                lite.close()
            return ""
        with db.writer.connect() as conn, conn.begin():
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {PG_STATEMENT_TIMEOUT_MS}")
            read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
            if read_only == "on":
                return "read_only"
            conn.execute(sa.text("SELECT seq FROM journal_head WHERE id = 1 FOR UPDATE NOWAIT"))
        return ""
    except sa.exc.OperationalError as exc:
        # PostgreSQL: the head row is locked by a writer mid-batch: writable
        if "could not obtain lock" in str(getattr(exc, "orig", "")):
            return ""
        return type(getattr(exc, "orig", exc)).__name__
    except Exception as exc:
        return type(exc).__name__


def probe_readable(db: Database) -> str:
    try:
        with db.reader.connect() as conn:
            conn.execute(sa.text("SELECT seq FROM journal_head WHERE id = 1")).fetchall()
        return ""
    except Exception as exc:
        return type(exc).__name__


class Readiness:
    """Runs a probe and reports changes through ``set_serving``."""

    def __init__(
        self,
        probe: Callable[[], str],
        set_serving: Callable[[bool], Awaitable[None]],
        *,
        extra: Callable[[], str] = lambda: "",
    ) -> None:
        self._probe = probe
        self._set_serving = set_serving
        self._extra = extra  # a condition checked without I/O (e.g. the writer link)
        self.ready = True

    async def check_once(self) -> bool:
        why = self._extra() or await asyncio.to_thread(self._probe)
        ready = not why
        metrics.ready(ready)
        if ready != self.ready:
            self.ready = ready
            if ready:
                log.info("ready")
            else:
                log.error("not_ready", reason=why)
            await self._set_serving(ready)
        return ready

    async def run(self) -> None:
        while True:
            ready = await self.check_once()
            await asyncio.sleep(INTERVAL_S if ready else RECOVERY_INTERVAL_S)
