"""The SQL of one appender transaction: load what a batch needs, write what
the planner produced. Every function takes the open connection of that
transaction; the caller owns commit and rollback."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.entry_format import Posting, is_member_account
from ledger.planner import BatchPlanner, Head, IdemKey, IdempotencyRecord, Original
from ledger.storage.schema import (
    account_entries,
    accounts,
    idempotency_keys,
    journal_entries,
    journal_head,
    journal_postings,
)

_CHUNK = 500  # bound on IN-list sizes
T = TypeVar("T")

# Built once: the appender runs these for every batch, and constructing SQL
# expressions costs more than executing their cached compiled form.
_SELECT_HEAD = (
    sa.select(journal_head.c.seq, journal_head.c.hash, journal_head.c.time_us)
    .where(journal_head.c.id == 1)
    .with_for_update()
)
_SELECT_BALANCES = sa.select(accounts.c.account_id, accounts.c.balance).where(
    accounts.c.account_id.in_(sa.bindparam("ids", expanding=True))
)
# uses the primary key (channel_id, idempotency_key): one channel at a time
_SELECT_IDEMPOTENCY = sa.select(idempotency_keys).where(
    idempotency_keys.c.channel_id == sa.bindparam("channel"),
    idempotency_keys.c.idempotency_key.in_(sa.bindparam("keys", expanding=True)),
)
_UPDATE_HEAD = (
    sa.update(journal_head)
    .where(journal_head.c.id == 1)
    .values(seq=sa.bindparam("s"), hash=sa.bindparam("h"), time_us=sa.bindparam("t"))
)
_MAX_PARAMS = 30_000  # per statement; SQLite allows 32766
_UPSERT_SET = "balance = excluded.balance, last_seq = excluded.last_seq"
_UPSERT_BALANCES = f" ON CONFLICT (account_id) DO UPDATE SET {_UPSERT_SET}"


@lru_cache(maxsize=4096)
def _values_sql(table: str, columns: tuple[str, ...], rows: int, mark: str, suffix: str) -> str:
    row = "(" + ", ".join([mark] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * rows) + suffix


def _insert_rows(
    conn: Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
    suffix: str = "",
) -> None:
    """One multi-row INSERT per chunk, as plain SQL on the driver.

    On SQLite every execution is a trip into the library that gives up and
    takes back the GIL, which costs far more than the row itself; and
    SQLAlchemy does not cache compiled multi-row VALUES statements. The SQL
    text is cached here per row count instead. Table and column names come
    from this module, never from input.
    """
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    step = max(1, _MAX_PARAMS // len(columns))
    for i in range(0, len(rows), step):
        chunk = rows[i : i + step]
        sql = _values_sql(table.name, columns, len(chunk), mark, suffix)
        conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row))


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def lock_head(conn: Connection) -> Head:
    """Read the chain head, holding the writers' lock until commit.

    PostgreSQL: row lock (FOR UPDATE). SQLite: the writer engine's BEGIN
    IMMEDIATE already holds the database write lock.
    """
    row = conn.execute(_SELECT_HEAD).one()
    return Head(row.seq, bytes(row.hash), row.time_us)


def load_balances(conn: Connection, account_ids: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in _chunks(sorted(account_ids)):
        rows = conn.execute(_SELECT_BALANCES, {"ids": list(part)})
        found.update({r.account_id: r.balance for r in rows})
    return found


def load_originals(conn: Connection, seqs: set[int]) -> dict[int, Original]:
    """The entries a batch wants to reverse, with how much is reversed already."""
    if not seqs:
        return {}
    originals: dict[int, Original] = {}
    wanted = sorted(seqs)
    for part in _chunks(wanted):
        rows = conn.execute(
            sa.select(
                journal_entries.c.seq,
                journal_entries.c.kind,
                journal_postings.c.from_account,
                journal_postings.c.to_account,
                journal_postings.c.points,
            )
            .join(journal_postings, journal_postings.c.seq == journal_entries.c.seq)
            .where(journal_entries.c.seq.in_(part), journal_postings.c.idx == 0)
        )
        for r in rows:
            posting = Posting(r.from_account, r.to_account, r.points)
            originals[r.seq] = Original(r.seq, r.kind, posting, 0)
        reversed_rows = conn.execute(
            sa.select(journal_entries.c.reverses, sa.func.sum(journal_postings.c.points))
            .join(journal_postings, journal_postings.c.seq == journal_entries.c.seq)
            .where(journal_entries.c.reverses.in_(part))
            .group_by(journal_entries.c.reverses)
        )
        for seq, total in reversed_rows:
            if seq in originals:
                originals[seq].reversed_points = int(total)
    return originals


def load_idempotency(conn: Connection, keys: set[IdemKey]) -> dict[IdemKey, IdempotencyRecord]:
    by_channel: dict[str, list[str]] = {}
    for channel, key in keys:
        by_channel.setdefault(channel, []).append(key)
    found: dict[IdemKey, IdempotencyRecord] = {}
    for channel, channel_keys in by_channel.items():
        for part in _chunks(sorted(channel_keys)):
            rows = conn.execute(_SELECT_IDEMPOTENCY, {"channel": channel, "keys": list(part)})
            for r in rows:
                found[(r.channel_id, r.idempotency_key)] = IdempotencyRecord(
                    r.channel_id, r.idempotency_key, bytes(r.fingerprint), bytes(r.response), r.seq
                )
    return found


def write_batch(conn: Connection, planner: BatchPlanner) -> None:
    """Persist everything the planner decided, in the caller's transaction."""
    now = planner.now_us
    _insert_rows(
        conn,
        accounts,
        ("account_id", "balance", "last_seq", "opened_us"),
        [(a, 0, 0, now) for a in planner.opened],
    )
    if planner.entries:
        _insert_rows(
            conn,
            journal_entries,
            ("seq", "time_us", "kind", "channel_id", "reverses", "details", "prev_hash", "hash"),
            [
                (e.sequence, e.time_us, e.kind, e.channel_id, e.reverses, e.details, e.prev_hash, h)
                for e, h in planner.entries
            ],
        )
        _insert_rows(
            conn,
            journal_postings,
            ("seq", "idx", "from_account", "to_account", "points"),
            [
                (e.sequence, i, p.from_account, p.to_account, p.points)
                for e, _ in planner.entries
                for i, p in enumerate(e.postings)
            ],
        )
        history = sorted(
            {
                (a, e.sequence)
                for e, _ in planner.entries
                for p in e.postings
                for a in (p.from_account, p.to_account)
                if is_member_account(a)
            }
        )
        _insert_rows(conn, account_entries, ("account_id", "seq"), history)
        # every touched account exists (the planner refuses unknown ones), so
        # this upsert only ever updates; it is one statement for the batch
        _insert_rows(
            conn,
            accounts,
            ("account_id", "balance", "last_seq", "opened_us"),
            [(a, planner.balances[a], seq, 0) for a, seq in planner.touched.items()],
            suffix=_UPSERT_BALANCES,
        )
        head = planner.head
        conn.execute(_UPDATE_HEAD, {"s": head.sequence, "h": head.hash, "t": head.time_us})
    _insert_rows(
        conn,
        idempotency_keys,
        ("channel_id", "idempotency_key", "fingerprint", "response", "seq", "created_us"),
        [
            (r.channel_id, r.idempotency_key, r.fingerprint, r.response, r.sequence, now)
            for r in planner.new_records
        ],
    )
