"""The SQL of one appender transaction: load what a batch needs, write what
the planner produced.

This is the hottest code in the ledger, so it talks to the database driver
directly (``WriteTx``) with fixed SQL text, instead of through SQLAlchemy's
statement machinery: on a GIL-bound server that machinery cost more than
SQLite itself. Table and column names come from this module, never from
input; every value is a bound parameter. The caller owns begin, commit and
rollback (``ledger/appender.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from audit.access_format import TEXT_FIELDS, AccessRecord
from audit.entry_format import Posting, is_member_account
from ledger.errors import IntegrityError
from ledger.members.vault import StoredKey
from ledger.planner import BatchPlanner, Head, IdemKey, IdempotencyRecord, Original

_CHUNK = 500  # bound on IN-list sizes
_MAX_PARAMS = 30_000  # per statement; SQLite allows 32766
T = TypeVar("T")


class WriteTx:
    """A DB-API cursor inside the appender's transaction, SQL written with
    ``?`` placeholders and translated for the driver."""

    def __init__(self, dbapi_connection: Any, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self._cursor = dbapi_connection.cursor()

    def sql(self, text: str) -> str:
        return text if self.sqlite else _pg_sql(text)

    def execute(self, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self.sql(text), tuple(params))
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def begin(self) -> None:
        """SQLite: take the database write lock now (the engine leaves BEGIN
        to us). PostgreSQL: the driver opens the transaction by itself; the
        head row lock in ``lock_head`` serializes writers."""
        if self.sqlite:
            self._cursor.execute("BEGIN IMMEDIATE")


@lru_cache(maxsize=256)
def _pg_sql(text: str) -> str:
    return text.replace("?", "%s")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


@lru_cache(maxsize=4096)
def _values_sql(table: str, columns: tuple[str, ...], rows: int, suffix: str) -> str:
    row = "(" + _marks(len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * rows) + suffix


def insert_rows(
    tx: WriteTx,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
    suffix: str = "",
) -> None:
    """One multi-row INSERT per chunk: on SQLite every execution is a trip
    into the library that gives up and takes back the GIL, which costs far
    more than the row itself."""
    step = max(1, _MAX_PARAMS // len(columns))
    for i in range(0, len(rows), step):
        chunk = rows[i : i + step]
        tx.execute(
            _values_sql(table, columns, len(chunk), suffix), [v for row in chunk for v in row]
        )


def lock_head(tx: WriteTx) -> Head:
    """Read the chain head, holding the writers' lock until commit.

    PostgreSQL: row lock (FOR UPDATE). SQLite: BEGIN IMMEDIATE already holds
    the database write lock.
    """
    lock = "" if tx.sqlite else " FOR UPDATE"
    ((seq, digest, time_us, epoch),) = tx.execute(
        "SELECT seq, hash, time_us, epoch FROM journal_head WHERE id = 1" + lock
    )
    return Head(seq, bytes(digest), time_us, epoch)


def load_balances(tx: WriteTx, account_ids: set[str]) -> tuple[dict[str, int], set[str]]:
    """Balances of the open accounts among ``account_ids``, and which of
    them are closed (erased members)."""
    found: dict[str, int] = {}
    closed: set[str] = set()
    for part in _chunks(sorted(account_ids)):
        rows = tx.execute(
            "SELECT account_id, balance, closed_us FROM accounts"
            f" WHERE account_id IN ({_marks(len(part))})",
            part,
        )
        for account, balance, closed_us in rows:
            if closed_us:
                closed.add(account)
            else:
                found[account] = balance
    return found, closed


def load_member_keys(tx: WriteTx, account_ids: set[str]) -> dict[str, list[StoredKey]]:
    """Wrapped data keys of ``account_ids`` (accounts without keys: absent)."""
    found: dict[str, list[StoredKey]] = {}
    for part in _chunks(sorted(account_ids)):
        for account, dek_version, kek_version, wrapped in tx.execute(
            "SELECT account_id, dek_version, kek_version, wrapped FROM member_keys"
            f" WHERE account_id IN ({_marks(len(part))})",
            part,
        ):
            found.setdefault(account, []).append(
                StoredKey(dek_version, kek_version, bytes(wrapped))
            )
    return found


def load_entry_details(tx: WriteTx, sequence: int) -> tuple[str, bytes] | None:
    """(member account, details bytes) of one entry, for replay checks."""
    rows = tx.execute(
        "SELECT e.details, p.from_account, p.to_account FROM journal_entries e"
        " JOIN journal_postings p ON p.seq = e.seq WHERE e.seq = ? AND p.idx = 0",
        (sequence,),
    )
    if not rows:
        return None
    details, source, target = rows[0]
    return (source if is_member_account(source) else target), bytes(details)


def load_originals(tx: WriteTx, seqs: set[int]) -> dict[int, Original]:
    """The entries a batch wants to reverse, with how much is reversed already."""
    originals: dict[int, Original] = {}
    for part in _chunks(sorted(seqs)):
        marks = _marks(len(part))
        for seq, kind, from_account, to_account, points in tx.execute(
            "SELECT e.seq, e.kind, p.from_account, p.to_account, p.points"
            " FROM journal_entries e JOIN journal_postings p ON p.seq = e.seq"
            f" WHERE e.seq IN ({marks}) AND p.idx = 0",
            part,
        ):
            posting = Posting(from_account, to_account, points)
            originals[seq] = Original(seq, kind, posting, 0)
        for seq, total in tx.execute(
            "SELECT e.reverses, SUM(p.points)"
            " FROM journal_entries e JOIN journal_postings p ON p.seq = e.seq"
            f" WHERE e.reverses IN ({marks}) GROUP BY e.reverses",
            part,
        ):
            if seq in originals:
                originals[seq].reversed_points = int(total)
    return originals


def load_idempotency(tx: WriteTx, keys: set[IdemKey]) -> dict[IdemKey, IdempotencyRecord]:
    """Records for the batch's keys, looked up by primary key (channel, key)."""
    by_channel: dict[str, list[str]] = {}
    for channel, key in keys:
        by_channel.setdefault(channel, []).append(key)
    found: dict[IdemKey, IdempotencyRecord] = {}
    for channel, channel_keys in by_channel.items():
        for part in _chunks(sorted(channel_keys)):
            rows = tx.execute(
                "SELECT channel_id, idempotency_key, fingerprint, response, seq"
                " FROM idempotency_keys WHERE channel_id = ?"
                f" AND idempotency_key IN ({_marks(len(part))})",
                [channel, *part],
            )
            for channel_id, key, fingerprint, response, seq in rows:
                found[(channel_id, key)] = IdempotencyRecord(
                    channel_id, key, bytes(fingerprint), bytes(response), seq
                )
    return found


_UPSERT_SET = "balance = excluded.balance, last_seq = excluded.last_seq"
_UPSERT_BALANCES = f" ON CONFLICT (account_id) DO UPDATE SET {_UPSERT_SET}"
_ACCOUNT_COLUMNS = ("account_id", "balance", "last_seq", "opened_us")


def write_batch(tx: WriteTx, planner: BatchPlanner) -> None:
    """Persist everything the planner decided, in the caller's transaction."""
    now = planner.now_us
    insert_rows(tx, "accounts", _ACCOUNT_COLUMNS, [(a, 0, 0, now) for a in planner.opened])
    if planner.entries:
        insert_rows(
            tx,
            "journal_entries",
            ("seq", "time_us", "kind", "channel_id", "reverses", "details", "prev_hash", "hash"),
            [
                (e.sequence, e.time_us, e.kind, e.channel_id, e.reverses, e.details, e.prev_hash, h)
                for e, h in planner.entries
            ],
        )
        insert_rows(
            tx,
            "journal_postings",
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
        insert_rows(tx, "account_entries", ("account_id", "seq"), history)
        # every touched account exists (the planner refuses unknown ones), so
        # this upsert only ever updates; it is one statement for the batch
        insert_rows(
            tx,
            "accounts",
            _ACCOUNT_COLUMNS,
            [(a, planner.balances[a], seq, 0) for a, seq in planner.touched.items()],
            suffix=_UPSERT_BALANCES,
        )
    if planner.entries or planner.erased:
        head = planner.head
        tx.execute(
            "UPDATE journal_head SET seq = ?, hash = ?, time_us = ?, epoch = ? WHERE id = 1",
            (head.sequence, head.hash, head.time_us, head.epoch),
        )
    _write_members(tx, planner)
    insert_rows(
        tx,
        "idempotency_keys",
        ("channel_id", "idempotency_key", "fingerprint", "response", "seq", "created_us"),
        [
            (r.channel_id, r.idempotency_key, r.fingerprint, r.response, r.sequence, now)
            for r in planner.new_records
        ],
    )


def _write_members(tx: WriteTx, planner: BatchPlanner) -> None:
    """Sealed profiles of enrolled members; erasures (crypto-shredding)."""
    now = planner.now_us
    enrolled = planner.enrolled
    if enrolled:
        insert_rows(
            tx,
            "member_keys",
            ("account_id", "dek_version", "kek_version", "wrapped", "created_us"),
            [
                (e.account, e.sealed.dek_version, e.sealed.kek_version, e.sealed.wrapped_dek, now)
                for e in enrolled
            ],
        )
        insert_rows(
            tx,
            "member_fields",
            ("account_id", "field", "ciphertext", "updated_us"),
            [(e.account, name, blob, now) for e in enrolled for name, blob in e.sealed.fields],
        )
        insert_rows(
            tx,
            "member_lookup",
            ("kind", "token", "account_id"),
            sorted({(k, t, e.account) for e in enrolled for k, t in e.sealed.lookups}),
        )
    if planner.erased:
        accounts = [cmd.account for cmd, _ in planner.erased]
        for part in _chunks(accounts):
            marks = _marks(len(part))
            # close first: the row lock makes a concurrent key rotation or
            # profile update (which lock the account row) finish before the
            # deletes below start, so they see its rows (PostgreSQL)
            tx.execute(
                f"UPDATE accounts SET closed_us = ? WHERE account_id IN ({marks})", [now, *part]
            )
            for table in ("member_keys", "member_fields", "member_lookup"):
                tx.execute(f"DELETE FROM {table} WHERE account_id IN ({marks})", part)
        insert_rows(
            tx,
            "member_erasures",
            ("account_id", "erased_us", "reason", "forfeit_seq"),
            [(cmd.account, now, cmd.reason, seq) for cmd, seq in planner.erased],
        )


# -- verifiable logs: tree nodes and the access log ------------------------------


def read_node(tx: WriteTx, log: int, key: tuple[int, int]) -> bytes:
    level, idx = key
    rows = tx.execute(
        "SELECT hash FROM merkle_nodes WHERE log = ? AND level = ? AND idx = ?", (log, level, idx)
    )
    if not rows:
        raise IntegrityError(f"merkle tree: node missing: log {log} level {level} index {idx}")
    return bytes(rows[0][0])


def insert_nodes(tx: WriteTx, log: int, nodes: Sequence[tuple[tuple[int, int], bytes]]) -> None:
    insert_rows(
        tx,
        "merkle_nodes",
        ("log", "level", "idx", "hash"),
        [(log, level, idx, h) for (level, idx), h in nodes],
    )


def read_access_head(tx: WriteTx) -> tuple[int, bytes, int]:
    """(sequence, hash, time) of the access log's last record. The journal
    head lock, taken first in every appender transaction, serializes this."""
    ((seq, digest, time_us),) = tx.execute(
        "SELECT seq, hash, time_us FROM access_head WHERE id = 1"
    )
    return seq, bytes(digest), time_us


_ACCESS_COLUMNS = ("seq", "time_us", *TEXT_FIELDS, "prev_hash", "hash")


def insert_access(tx: WriteTx, rows: Sequence[tuple[AccessRecord, bytes]]) -> None:
    insert_rows(
        tx,
        "access_log",
        _ACCESS_COLUMNS,
        [
            (r.sequence, r.time_us, *(getattr(r, name) for name in TEXT_FIELDS), r.prev_hash, h)
            for r, h in rows
        ],
    )


def write_access_head(tx: WriteTx, seq: int, digest: bytes, time_us: int) -> None:
    tx.execute(
        "UPDATE access_head SET seq = ?, hash = ?, time_us = ? WHERE id = 1", (seq, digest, time_us)
    )
