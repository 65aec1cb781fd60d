"""Read queries on the journal: balances, entries, a member's history, and
the full walk that ``loyalty-ledger verify`` makes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.chain import MISSING_HEAD, Head, StoredEntry
from audit.entry_format import JournalEntry, Posting
from ledger.storage.schema import (
    account_entries,
    accounts,
    journal_entries,
    journal_head,
    journal_postings,
)


def _raw(value: Any) -> Any:
    """Binary columns as bytes (PostgreSQL returns memoryview). Anything else
    is passed on as stored, so that the verifier reports a tampered type
    instead of this layer crashing on it."""
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def _entries(
    conn: Connection, seqs: sa.ColumnElement[bool], postings_of: sa.ColumnElement[bool]
) -> list[StoredEntry]:
    """Entries matching ``seqs``, with the postings matching ``postings_of``
    (the same set of sequence numbers, expressed on journal_postings)."""
    rows = conn.execute(
        sa.select(journal_entries).where(seqs).order_by(journal_entries.c.seq)
    ).all()
    if not rows:
        return []
    postings: defaultdict[int, list[Posting]] = defaultdict(list)
    for p in conn.execute(
        sa.select(journal_postings)
        .where(postings_of)
        .order_by(journal_postings.c.seq, journal_postings.c.idx)
    ):
        postings[p.seq].append(Posting(p.from_account, p.to_account, p.points))
    return [
        StoredEntry(
            JournalEntry(
                sequence=r.seq,
                time_us=r.time_us,
                prev_hash=_raw(r.prev_hash),
                kind=r.kind,
                channel_id=r.channel_id,
                reverses=r.reverses,
                postings=tuple(postings.get(r.seq, ())),
                details=_raw(r.details),
            ),
            _raw(r.hash),
        )
        for r in rows
    ]


def _entries_in(conn: Connection, seqs: list[int]) -> list[StoredEntry]:
    return _entries(conn, journal_entries.c.seq.in_(seqs), journal_postings.c.seq.in_(seqs))


def _entries_between(conn: Connection, first: int, last: int) -> list[StoredEntry]:
    return _entries(
        conn,
        journal_entries.c.seq.between(first, last),
        journal_postings.c.seq.between(first, last),
    )


class JournalReads:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def balance(self, account_id: str) -> tuple[int, int] | None:
        """(balance, as_of_sequence) read in one statement, so both agree."""
        with self._engine.connect() as conn:
            head_seq = sa.select(journal_head.c.seq).where(journal_head.c.id == 1).scalar_subquery()
            row = conn.execute(
                sa.select(accounts.c.balance, head_seq).where(accounts.c.account_id == account_id)
            ).first()
        return None if row is None else (row[0], row[1])

    def entry(self, seq: int) -> StoredEntry | None:
        with self._engine.connect() as conn:
            found = _entries_in(conn, [seq])
        return found[0] if found else None

    def history(self, account_id: str, before: int | None, limit: int) -> list[StoredEntry] | None:
        """Up to ``limit`` entries touching the account, newest first; None
        when the account does not exist."""
        with self._engine.connect() as conn:
            exists = conn.execute(
                sa.select(accounts.c.account_id).where(accounts.c.account_id == account_id)
            ).first()
            if exists is None:
                return None
            q = sa.select(account_entries.c.seq).where(account_entries.c.account_id == account_id)
            if before is not None:
                q = q.where(account_entries.c.seq < before)
            seqs = list(conn.scalars(q.order_by(account_entries.c.seq.desc()).limit(limit)))
            if not seqs:
                return []
            found = _entries_in(conn, seqs)
        return sorted(found, key=lambda s: s.entry.sequence, reverse=True)

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read transaction that sees a single consistent state of the
        journal, however long the caller takes (REPEATABLE READ on PostgreSQL;
        a WAL read transaction on SQLite)."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn


def read_head(conn: Connection) -> Head:
    """The recorded chain head; ``MISSING_HEAD`` when the row is gone or doubled."""
    rows = conn.execute(sa.select(journal_head.c.seq, journal_head.c.hash)).all()
    if len(rows) != 1:
        return MISSING_HEAD
    return Head(rows[0].seq, _raw(rows[0].hash))


def read_balances(conn: Connection) -> dict[str, int]:
    return {r.account_id: r.balance for r in conn.execute(sa.select(accounts))}


def walk(conn: Connection, chunk: int = 5000) -> Iterator[StoredEntry]:
    """Every entry in stored sequence order, read in bounded chunks."""
    after: int | None = None
    while True:
        q = sa.select(journal_entries.c.seq).order_by(journal_entries.c.seq).limit(chunk)
        if after is not None:
            q = q.where(journal_entries.c.seq > after)
        seqs = list(conn.scalars(q))
        if not seqs:
            return
        yield from _entries_between(conn, seqs[0], seqs[-1])
        after = seqs[-1]
