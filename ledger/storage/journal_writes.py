"""The SQL of one appender transaction: load what a batch needs, write what
the planner produced. Every function takes the open connection of that
transaction; the caller owns commit and rollback."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
_SELECT_IDEMPOTENCY = sa.select(idempotency_keys).where(
    idempotency_keys.c.idempotency_key.in_(sa.bindparam("keys", expanding=True))
)
_UPDATE_BALANCE = (
    sa.update(accounts)
    .where(accounts.c.account_id == sa.bindparam("a"))
    .values(balance=sa.bindparam("b"), last_seq=sa.bindparam("s"))
)
_UPDATE_HEAD = (
    sa.update(journal_head)
    .where(journal_head.c.id == 1)
    .values(seq=sa.bindparam("s"), hash=sa.bindparam("h"), time_us=sa.bindparam("t"))
)
_INSERT_ACCOUNTS = accounts.insert()
_INSERT_ENTRIES = journal_entries.insert()
_INSERT_POSTINGS = journal_postings.insert()
_INSERT_HISTORY = account_entries.insert()
_INSERT_KEYS = idempotency_keys.insert()


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
    found: dict[IdemKey, IdempotencyRecord] = {}
    by_key = sorted({k for _, k in keys})
    for part in _chunks(by_key):
        rows = conn.execute(_SELECT_IDEMPOTENCY, {"keys": list(part)})
        for r in rows:
            key = (r.channel_id, r.idempotency_key)
            if key in keys:
                found[key] = IdempotencyRecord(
                    r.channel_id, r.idempotency_key, bytes(r.fingerprint), bytes(r.response), r.seq
                )
    return found


def write_batch(conn: Connection, planner: BatchPlanner) -> None:
    """Persist everything the planner decided, in the caller's transaction."""
    now = planner.now_us
    if planner.opened:
        conn.execute(
            _INSERT_ACCOUNTS,
            [
                {"account_id": a, "balance": 0, "last_seq": 0, "opened_us": now}
                for a in planner.opened
            ],
        )
    if planner.entries:
        conn.execute(
            _INSERT_ENTRIES,
            [
                {
                    "seq": e.sequence,
                    "time_us": e.time_us,
                    "kind": e.kind,
                    "channel_id": e.channel_id,
                    "reverses": e.reverses,
                    "details": e.details,
                    "prev_hash": e.prev_hash,
                    "hash": h,
                }
                for e, h in planner.entries
            ],
        )
        conn.execute(
            _INSERT_POSTINGS,
            [
                {
                    "seq": e.sequence,
                    "idx": i,
                    "from_account": p.from_account,
                    "to_account": p.to_account,
                    "points": p.points,
                }
                for e, _ in planner.entries
                for i, p in enumerate(e.postings)
            ],
        )
        history = {
            (a, e.sequence)
            for e, _ in planner.entries
            for p in e.postings
            for a in (p.from_account, p.to_account)
            if is_member_account(a)
        }
        conn.execute(_INSERT_HISTORY, [{"account_id": a, "seq": s} for a, s in history])
        conn.execute(
            _UPDATE_BALANCE,
            [{"a": a, "b": planner.balances[a], "s": seq} for a, seq in planner.touched.items()],
        )
        head = planner.head
        conn.execute(_UPDATE_HEAD, {"s": head.sequence, "h": head.hash, "t": head.time_us})
    if planner.new_records:
        conn.execute(
            _INSERT_KEYS,
            [
                {
                    "channel_id": r.channel_id,
                    "idempotency_key": r.idempotency_key,
                    "fingerprint": r.fingerprint,
                    "response": r.response,
                    "seq": r.sequence,
                    "created_us": now,
                }
                for r in planner.new_records
            ],
        )
