"""Engines for the two supported backends.

SQLite (embedded default): WAL journal, ``synchronous=FULL`` so every commit
is durable, ``BEGIN IMMEDIATE`` on the writer engine so a writer takes the
database's write lock before it reads the chain head (this serializes
writers across processes too), plain deferred transactions on the reader
engine so reads never wait for a writer.

PostgreSQL: one engine for both; writers serialize on ``SELECT ... FOR
UPDATE`` of the chain head row (see ledger/storage/journal_writes.py).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Database:
    url: str
    writer: Engine
    reader: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    @property
    def sqlite_path(self) -> str:
        database = self.writer.url.database
        assert self.is_sqlite and database
        return database

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


class WalCheckpointer:
    """SQLite: copy the write-ahead log into the database in a thread of its
    own, so that no commit waits for it.

    By default SQLite checkpoints inside the commit that grows the WAL past
    1,000 pages: that commit, and every call waiting on its group, then
    waits for the copy and an extra fsync (tens of milliseconds, the p99 of
    a busy server). The appender's process turns that off for its writer
    engine (``open_database(..., background_checkpoints=True)``) and runs
    this instead: a PASSIVE checkpoint every ``interval`` seconds, which
    never blocks writers or readers."""

    def __init__(self, path: str, interval: float = 0.5) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.warning("wal_checkpoint_failed", exc_info=True)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)


def truncate_wal(path: str, timeout_ms: int = 5000) -> bool:
    """Copy the whole WAL into the database and truncate it to zero bytes
    (SQLite's TRUNCATE checkpoint), so page images written before an
    erasure (which held the erased rows) are no longer in any file of the
    database. Waits up to ``timeout_ms`` for readers of older snapshots;
    False if one still held the WAL (nothing is lost: call again)."""
    conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error:
        log.warning("wal_truncate_failed", exc_info=True)
        return False
    finally:
        conn.close()
    return bool(busy == 0)


WRITER_CACHE_KIB = 64 * 1024  # page cache per writer connection
READER_CACHE_KIB = 16 * 1024  # per reader connection


def _sqlite_engine(url: str, *, immediate: bool, autocheckpoint: bool = True) -> Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        hide_parameters=True,  # errors never quote values (they may be personal)
        pool_size=8,
        max_overflow=32,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        # SQLite's default page cache is 2 MiB: past a million entries the
        # writer's inserts into the account and journal indexes miss it on
        # most pages (the 1 M-entry bulk import ran 25 % slower than into an
        # empty ledger; with these sizes, as fast). Pages are taken as used.
        cur.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB if immediate else READER_CACHE_KIB}")
        # deleted rows (an erased member's wrapped keys and field
        # ciphertexts, a rewrapped key) are overwritten with zeros in the
        # page, not just unlinked; truncate_wal() then removes the old
        # page images from the WAL (docs/field-encryption.md, "Erasure
        # on disk")
        cur.execute("PRAGMA secure_delete=ON")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def open_database(url: str, *, background_checkpoints: bool = False) -> Database:
    """Create the engines for ``url`` (sqlite:///path or postgresql+psycopg://...).

    ``background_checkpoints`` (SQLite): the writer engine's commits never
    checkpoint the WAL; the caller runs a ``WalCheckpointer``."""
    if url.startswith("sqlite"):
        return Database(
            url,
            _sqlite_engine(url, immediate=True, autocheckpoint=not background_checkpoints),
            _sqlite_engine(url, immediate=False),
        )
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = sa.create_engine(
        url, pool_size=8, max_overflow=32, pool_pre_ping=True, hide_parameters=True
    )
    return Database(url, engine, engine)
