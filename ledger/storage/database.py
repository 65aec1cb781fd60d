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

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclass(frozen=True, slots=True)
class Database:
    url: str
    writer: Engine
    reader: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
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
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def open_database(url: str) -> Database:
    """Create the engines for ``url`` (sqlite:///path or postgresql+psycopg://...)."""
    if url.startswith("sqlite"):
        return Database(
            url, _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
        )
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = sa.create_engine(
        url, pool_size=8, max_overflow=32, pool_pre_ping=True, hide_parameters=True
    )
    return Database(url, engine, engine)
