"""Read queries on the journal: balances, entries, a member's history, and
the full walk that ``loyalty-ledger verify`` makes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.accounts import lot_of
from audit.chain import MISSING_HEAD, Head, StoredEntry
from audit.entry_format import JournalEntry, Posting
from ledger.program.lots import Family, HoldState, LotTerms
from ledger.program.terms import month_of
from ledger.program.tiers import Stats
from ledger.storage.schema import (
    account_entries,
    accounts,
    hold_ends,
    holds,
    journal_entries,
    journal_head,
    journal_postings,
    member_stats,
    tier_changes,
)

_DAY_US = 86_400_000_000


@dataclass(slots=True)
class Liability:
    as_of_sequence: int
    program: dict[str, int] = field(default_factory=dict)  # program and partner accounts
    by_state: dict[str, int] = field(default_factory=dict)
    by_expiry_month: dict[str, int] = field(default_factory=dict)


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

    def family(self, account_id: str) -> tuple[Family, int] | None:
        """A member's sub-accounts with points, their lots' terms and open
        holds, and the sequence they reflect, from one consistent snapshot;
        None when the member does not exist."""
        with self.snapshot() as conn:
            head_seq = conn.execute(
                sa.select(journal_head.c.seq).where(journal_head.c.id == 1)
            ).scalar_one()
            rows = conn.execute(
                sa.select(
                    accounts.c.account_id,
                    accounts.c.balance,
                    accounts.c.closed_us,
                    accounts.c.expires_us,
                    accounts.c.matures_us,
                ).where(
                    accounts.c.owner == account_id,
                    sa.or_(accounts.c.balance != 0, accounts.c.account_id == account_id),
                )
            ).all()
            owner_row = next((r for r in rows if r.account_id == account_id), None)
            if owner_row is None:
                return None
            family = Family(account_id, {}, closed=bool(owner_row.closed_us))
            for r in rows:
                family.accounts[r.account_id] = r.balance
                if r.expires_us or r.matures_us:
                    family.terms[lot_of(r.account_id)] = LotTerms(r.expires_us, r.matures_us)
            ended = sa.select(hold_ends.c.seq).where(hold_ends.c.seq == holds.c.seq)
            for h in conn.execute(
                sa.select(holds).where(holds.c.owner == account_id, ~sa.exists(ended))
            ):
                postings = conn.execute(
                    sa.select(journal_postings)
                    .where(journal_postings.c.seq == h.seq)
                    .order_by(journal_postings.c.idx)
                ).all()
                family.holds[h.seq] = HoldState(
                    h.seq,
                    account_id,
                    tuple(Posting(p.from_account, p.to_account, p.points) for p in postings),
                    h.expires_us,
                    h.channel_id,
                )
        return family, head_seq

    def tier(self, account_id: str) -> tuple[Stats, list[tuple[int, str, str, str]]] | None:
        """A member's tier stats and tier history (oldest first); None when
        the member does not exist."""
        with self.snapshot() as conn:
            exists = conn.execute(
                sa.select(accounts.c.account_id).where(accounts.c.account_id == account_id)
            ).first()
            if exists is None:
                return None
            data = conn.execute(
                sa.select(member_stats.c.data).where(member_stats.c.account_id == account_id)
            ).scalar()
            history = conn.execute(
                sa.select(
                    tier_changes.c.time_us,
                    tier_changes.c.from_tier,
                    tier_changes.c.to_tier,
                    tier_changes.c.reason,
                )
                .where(tier_changes.c.account_id == account_id)
                .order_by(tier_changes.c.idx)
            ).all()
        stats = Stats.from_json(bytes(data)) if data is not None else Stats()
        return stats, [tuple(r) for r in history]

    def due_members(self, now_us: int, limit: int) -> list[str]:
        """Members with something time has made due: a hold past its
        timeout, a pending lot past its window, a lot past its expiry."""
        ended = sa.select(hold_ends.c.seq).where(hold_ends.c.seq == holds.c.seq)
        with self._engine.connect() as conn:
            lots = conn.execute(
                sa.select(accounts.c.owner)
                .where(
                    accounts.c.due_us > 0,
                    accounts.c.due_us <= now_us,
                    accounts.c.balance > 0,
                    accounts.c.closed_us == 0,
                )
                .distinct()
                .limit(limit)
            ).scalars()
            timed_out = conn.execute(
                sa.select(holds.c.owner)
                .where(holds.c.expires_us <= now_us, ~sa.exists(ended))
                .distinct()
                .limit(limit)
            ).scalars()
            reviews = conn.execute(
                sa.select(member_stats.c.account_id)
                .where(member_stats.c.review_us > 0, member_stats.c.review_us <= now_us)
                .limit(limit)
            ).scalars()
            return sorted(set(lots) | set(timed_out) | set(reviews))[:limit]

    def liability(self) -> Liability:
        """Outstanding points by state, by expiry day and per partner, and
        the program accounts, from one snapshot. Streams grouped rows: the
        database does the sums, memory holds one row per distinct day."""
        day = sa.literal(_DAY_US, sa.BigInteger)
        with self.snapshot() as conn:
            as_of = conn.execute(
                sa.select(journal_head.c.seq).where(journal_head.c.id == 1)
            ).scalar_one()
            out = Liability(as_of)
            member = accounts.c.owner != ""
            for account, balance in conn.execute(
                sa.select(accounts.c.account_id, accounts.c.balance).where(~member)
            ):
                out.program[account] = balance
            form = sa.case(
                (accounts.c.account_id.like("%/pending/%"), "pending"),
                (accounts.c.account_id.like("%/held/%"), "held"),
                else_="available",
            )
            for state, total in conn.execute(
                sa.select(form, sa.func.sum(accounts.c.balance))
                .where(member, accounts.c.balance != 0)
                .group_by(form)
            ):
                out.by_state[state] = int(total)
            expiry_day = sa.case(
                (accounts.c.expires_us == 0, -1), else_=accounts.c.expires_us / day
            )
            for days, total in conn.execute(
                sa.select(expiry_day, sa.func.sum(accounts.c.balance))
                .where(member, accounts.c.balance != 0, ~accounts.c.account_id.like("%/held/%"))
                .group_by(expiry_day)
            ):
                key = "never" if days < 0 else month_of(int(days) * _DAY_US)
                out.by_expiry_month[key] = out.by_expiry_month.get(key, 0) + int(total)
        return out

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
