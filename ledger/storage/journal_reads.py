"""Read queries on the journal: balances, entries, a member's history, and
the full walk that ``loyalty-ledger verify`` makes."""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.accounts import PARTNER_PREFIX, lot_of
from audit.chain import MISSING_HEAD, Head, StoredEntry
from audit.entry_format import JournalEntry, Posting
from ledger.program.lots import Family, HoldState, LotTerms
from ledger.program.terms import month_of
from ledger.program.tiers import Stats
from ledger.storage.journal_writes import WriteTx
from ledger.storage.schema import (
    account_entries,
    accounts,
    hold_ends,
    holds,
    journal_entries,
    journal_head,
    journal_postings,
    member_stats,
    voucher_ends,
)
from ledger.storage.schema import vouchers as vouchers_table

_DAY_US = 86_400_000_000
READ_THREADS = 4  # PostgreSQL read threads (and connections) per JournalReads
_NO_SEQ = 2**63 - 1  # "before nothing": every sequence is smaller
_PENDING_LIKE = "%/pending/%"
_HELD_LIKE = "%/held/%"
# synthetic lot numbers of a balance's groups: above any real lot (a sequence)
_GROUP_LOT = 10**15


@dataclass(slots=True)
class Liability:
    as_of_sequence: int
    program: dict[str, int] = field(default_factory=dict)  # program and partner accounts
    by_state: dict[str, int] = field(default_factory=dict)
    by_expiry_month: dict[str, int] = field(default_factory=dict)
    # partner clearing account -> (points members sent out, points that came in)
    partner_flows: dict[str, tuple[int, int]] = field(default_factory=dict)
    open_vouchers: dict[str, int] = field(default_factory=dict)  # reward -> open vouchers


@dataclass(frozen=True, slots=True)
class VoucherRow:
    """A voucher as read (docs/program-rules.md §11)."""

    sequence: int
    owner: str
    reward_id: str
    points: int
    issued_us: int
    valid_until_us: int
    state: str  # "issued" while open
    end_sequence: int  # 0 while open
    channel_id: str  # the channel it was claimed through


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
                request=_raw(r.request) or b"",
            ),
            _raw(r.hash),
        )
        for r in rows
    ]


def _entries_between(conn: Connection, first: int, last: int) -> list[StoredEntry]:
    return _entries(
        conn,
        journal_entries.c.seq.between(first, last),
        journal_postings.c.seq.between(first, last),
    )


def _fixed_entries(tx: WriteTx, seqs: list[int]) -> list[StoredEntry]:
    """Entries ``seqs`` (at most a page) with their postings, in sequence order."""
    marks = ", ".join("?" * len(seqs))
    rows = tx.execute(
        "SELECT seq, time_us, prev_hash, kind, channel_id, reverses, details, hash, request"
        f" FROM journal_entries WHERE seq IN ({marks}) ORDER BY seq",
        seqs,
    )
    postings: defaultdict[int, list[Posting]] = defaultdict(list)
    for seq, source, target, points in tx.execute(
        "SELECT seq, from_account, to_account, points FROM journal_postings"
        f" WHERE seq IN ({marks}) ORDER BY seq, idx",
        seqs,
    ):
        postings[seq].append(Posting(source, target, points))
    return [
        StoredEntry(
            JournalEntry(
                sequence=seq,
                time_us=time_us,
                prev_hash=_raw(prev_hash),
                kind=kind,
                channel_id=channel_id,
                reverses=reverses,
                postings=tuple(postings.get(seq, ())),
                details=_raw(details),
                request=_raw(request) or b"",
            ),
            _raw(digest),
        )
        for seq, time_us, prev_hash, kind, channel_id, reverses, details, digest, request in rows
    ]


class JournalReads:
    """Reads of the journal. The ones on a call's hot path (a member's
    balance, tier, entries) use fixed SQL on a driver connection this
    object keeps per thread, one short read transaction each, instead of
    building and compiling SQLAlchemy statements on every call.

    ``inline``: on SQLite a read of a few indexed rows takes tens of
    microseconds and never waits for a writer (WAL), so callers may run it
    on their event loop rather than hop to a thread; on PostgreSQL a read
    is a network round trip, and callers hand it to a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        # PostgreSQL: the threads reads run in, each keeping one connection
        # (bounded, so N workers hold at most N x READ_THREADS of them)
        self.executor = (
            None
            if self._sqlite
            else ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="reads")
        )

    @property
    def inline(self) -> bool:
        return self._sqlite

    @contextmanager
    def _read(self) -> Iterator[WriteTx]:
        """One read transaction on this thread's driver connection, which
        sees a single state of the journal (a WAL read transaction on
        SQLite; REPEATABLE READ on PostgreSQL)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._engine.raw_connection()
            if not self._sqlite:
                import psycopg

                pg: Any = conn.driver_connection
                pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._local.conn = conn
        driver: Any = conn.driver_connection
        tx = WriteTx(driver, self._engine.dialect.name)
        try:
            if self._sqlite:
                tx.execute("BEGIN")
            yield tx
        except BaseException:
            self._local.conn = None  # a broken connection is not used again
            with contextlib.suppress(Exception):
                driver.rollback() if not self._sqlite else driver.execute("ROLLBACK")
            with contextlib.suppress(Exception):
                conn.invalidate()  # discarded, not pooled: it may be mid-transaction or isolated
            raise
        if self._sqlite:
            tx.execute("COMMIT")
        else:
            driver.rollback()  # read only: ending the transaction is all

    def family(self, account_id: str) -> tuple[Family, int] | None:
        """What a member's balance is computed from, and the sequence it
        reflects, from one consistent snapshot; None when the member does
        not exist.

        A member has one account per lot, and a regular customer gathers
        hundreds. Their balance does not need each lot, only the points per
        (state, expiry, maturity): the database sums them, and the family
        holds one synthetic lot per group (numbered from ``_GROUP_LOT``),
        plus the held accounts (few: open holds) as they are, with their
        holds. ``view()`` of it is the balance ``view()`` of the full
        family gives (lots are summed per expiry there too)."""
        with self._read() as tx:
            ((head_seq,),) = tx.execute("SELECT seq FROM journal_head WHERE id = 1")
            owner_row = tx.execute(
                "SELECT closed_us FROM accounts WHERE account_id = ? AND owner = ?",
                (account_id, account_id),
            )
            if not owner_row:
                return None
            family = Family(account_id, {}, closed=bool(owner_row[0][0]))
            groups = tx.execute(
                "SELECT CASE WHEN account_id LIKE ? THEN 1 ELSE 0 END, expires_us, matures_us,"
                " SUM(balance) FROM accounts WHERE owner = ? AND balance > 0"
                " AND account_id NOT LIKE ? GROUP BY 1, 2, 3",
                (_PENDING_LIKE, account_id, _HELD_LIKE),
            )
            for i, (pending, expires_us, matures_us, points) in enumerate(groups):
                lot = _GROUP_LOT + i
                form = "pending" if pending else "lot"
                family.accounts[f"{account_id}/{form}/{lot}"] = int(points)
                family.terms[lot] = LotTerms(expires_us, matures_us)
            for account, balance, expires_us, matures_us in tx.execute(
                "SELECT account_id, balance, expires_us, matures_us FROM accounts"
                " WHERE owner = ? AND balance > 0 AND account_id LIKE ?",
                (account_id, _HELD_LIKE),
            ):
                family.accounts[account] = balance
                if expires_us or matures_us:
                    family.terms[lot_of(account)] = LotTerms(expires_us, matures_us)
            open_holds = tx.execute(
                "SELECT h.seq, h.expires_us, h.channel_id FROM holds h WHERE h.owner = ?"
                " AND NOT EXISTS (SELECT 1 FROM hold_ends e WHERE e.seq = h.seq)",
                (account_id,),
            )
            for seq, expires_us, channel_id in open_holds:
                postings = tx.execute(
                    "SELECT from_account, to_account, points FROM journal_postings"
                    " WHERE seq = ? ORDER BY idx",
                    (seq,),
                )
                family.holds[seq] = HoldState(
                    seq,
                    account_id,
                    tuple(Posting(a, b, n) for a, b, n in postings),
                    expires_us,
                    channel_id,
                )
        return family, head_seq

    def tier(self, account_id: str) -> tuple[Stats, list[tuple[int, str, str, str]]] | None:
        """A member's tier stats and tier history (oldest first); None when
        the member does not exist."""
        with self._read() as tx:
            if not tx.execute("SELECT 1 FROM accounts WHERE account_id = ?", (account_id,)):
                return None
            data = tx.execute("SELECT data FROM member_stats WHERE account_id = ?", (account_id,))
            history = tx.execute(
                "SELECT time_us, from_tier, to_tier, reason FROM tier_changes"
                " WHERE account_id = ? ORDER BY idx",
                (account_id,),
            )
        stats = Stats.from_json(bytes(data[0][0])) if data else Stats()
        return stats, [(int(t), str(a), str(b), str(why)) for t, a, b, why in history]

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
            vouchers = conn.execute(
                sa.select(vouchers_table.c.owner)
                .where(
                    vouchers_table.c.valid_until_us <= now_us,
                    ~sa.exists(
                        sa.select(voucher_ends.c.seq).where(
                            voucher_ends.c.seq == vouchers_table.c.seq
                        )
                    ),
                )
                .distinct()
                .limit(limit)
            ).scalars()
            due = set(lots) | set(timed_out) | set(reviews) | set(vouchers)
            return sorted(due)[:limit]

    _VOUCHER = (
        "SELECT v.seq, v.owner, v.reward_id, e.time_us, v.valid_until_us, d.state, d.end_seq,"
        " v.channel_id,"
        " (SELECT sum(p.points) FROM journal_postings p WHERE p.seq = v.seq)"
        " FROM vouchers v JOIN journal_entries e ON e.seq = v.seq"
        " LEFT JOIN voucher_ends d ON d.seq = v.seq"
    )

    @staticmethod
    def _voucher_row(row: tuple[Any, ...]) -> VoucherRow:
        seq, owner, reward, issued, until, state, end_seq, channel, points = row
        return VoucherRow(
            int(seq), owner, reward, int(points or 0), int(issued), int(until),
            state or "issued", int(end_seq or 0), channel,
        )  # fmt: skip

    def voucher(self, seq: int) -> VoucherRow | None:
        with self._read() as tx:
            rows = tx.execute(self._VOUCHER + " WHERE v.seq = ?", (seq,))
        return self._voucher_row(rows[0]) if rows else None

    def vouchers_of(self, owner: str, include_ended: bool, limit: int) -> list[VoucherRow]:
        """A member's vouchers, newest first (open ones only unless ``include_ended``)."""
        where = " WHERE v.owner = ?" + ("" if include_ended else " AND d.seq IS NULL")
        with self._read() as tx:
            rows = tx.execute(
                self._VOUCHER + where + " ORDER BY v.seq DESC LIMIT ?", (owner, limit)
            )
        return [self._voucher_row(r) for r in rows]

    def reward_stock(self) -> dict[str, int]:
        """Vouchers taken per reward (issued, not cancelled or expired)."""
        with self._read() as tx:
            rows = tx.execute("SELECT reward_id, taken FROM reward_stock", ())
        return {reward: int(taken) for reward, taken in rows}

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
            # gross exchange per partner: only the entries that touch a
            # clearing account (its account_entries rows, a primary-key range)
            sent = sa.case(
                (
                    journal_postings.c.to_account == account_entries.c.account_id,
                    journal_postings.c.points,
                ),
                else_=0,
            )
            came = sa.case(
                (
                    journal_postings.c.from_account == account_entries.c.account_id,
                    journal_postings.c.points,
                ),
                else_=0,
            )
            for account, points_out, points_in in conn.execute(
                sa.select(account_entries.c.account_id, sa.func.sum(sent), sa.func.sum(came))
                .join(journal_postings, journal_postings.c.seq == account_entries.c.seq)
                .where(
                    account_entries.c.account_id >= PARTNER_PREFIX,
                    account_entries.c.account_id < PARTNER_PREFIX[:-1] + ";",  # ':' + 1
                )
                .group_by(account_entries.c.account_id)
            ):
                out.partner_flows[account] = (int(points_out or 0), int(points_in or 0))
            ended = sa.select(voucher_ends.c.seq).where(voucher_ends.c.seq == vouchers_table.c.seq)
            for reward, count in conn.execute(
                sa.select(vouchers_table.c.reward_id, sa.func.count())
                .where(~sa.exists(ended))
                .group_by(vouchers_table.c.reward_id)
            ):
                out.open_vouchers[reward] = int(count)
        return out

    def entry(self, seq: int) -> StoredEntry | None:
        with self._read() as tx:
            found = _fixed_entries(tx, [seq])
        return found[0] if found else None

    def history(self, account_id: str, before: int | None, limit: int) -> list[StoredEntry] | None:
        """Up to ``limit`` entries touching the account, newest first; None
        when the account does not exist."""
        with self._read() as tx:
            if not tx.execute("SELECT 1 FROM accounts WHERE account_id = ?", (account_id,)):
                return None
            seqs = [
                int(seq)
                for (seq,) in tx.execute(
                    "SELECT seq FROM account_entries WHERE account_id = ? AND seq < ?"
                    " ORDER BY seq DESC LIMIT ?",
                    (account_id, _NO_SEQ if before is None else before, limit),
                )
            ]
            found = _fixed_entries(tx, seqs) if seqs else []
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
