"""Read queries on the journal: balances, entries, a member's history, and
the full walk that ``loyalty-ledger verify`` makes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.chain import Head, StoredEntry
from audit.entry_format import JournalEntry, Posting
from ledger.storage.schema import (
    account_entries,
    accounts,
    journal_entries,
    journal_head,
    journal_postings,
)


def _entries(conn: Connection, where: sa.ColumnElement[bool]) -> list[StoredEntry]:
    rows = conn.execute(
        sa.select(journal_entries).where(where).order_by(journal_entries.c.seq)
    ).all()
    if not rows:
        return []
    seqs = [r.seq for r in rows]
    postings: defaultdict[int, list[Posting]] = defaultdict(list)
    for p in conn.execute(
        sa.select(journal_postings)
        .where(journal_postings.c.seq.between(min(seqs), max(seqs)))
        .order_by(journal_postings.c.seq, journal_postings.c.idx)
    ):
        postings[p.seq].append(Posting(p.from_account, p.to_account, p.points))
    return [
        StoredEntry(
            JournalEntry(
                sequence=r.seq,
                time_us=r.time_us,
                prev_hash=bytes(r.prev_hash),
                kind=r.kind,
                channel_id=r.channel_id,
                reverses=r.reverses,
                postings=tuple(postings.get(r.seq, ())),
                details=bytes(r.details),
            ),
            bytes(r.hash),
        )
        for r in rows
    ]


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
            found = _entries(conn, journal_entries.c.seq == seq)
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
            found = _entries(conn, journal_entries.c.seq.in_(seqs))
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
    row = conn.execute(sa.select(journal_head.c.seq, journal_head.c.hash)).one()
    return Head(row.seq, bytes(row.hash))


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
        yield from _entries(conn, journal_entries.c.seq.between(seqs[0], seqs[-1]))
        after = seqs[-1]
