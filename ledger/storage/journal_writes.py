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
from audit.accounts import (
    PARTNER_PREFIX,
    SHORTFALL_PREFIX,
    lot_of,
    owner_of,
    parse_member_account,
)
from audit.entry_format import Posting, is_member_account
from ledger.errors import IntegrityError
from ledger.keys.idempotency_digest import IdempotencyDigest, is_digest
from ledger.members.freshness import ProfileState, newest_commitment, stored_digests
from ledger.members.vault import StoredKey
from ledger.planner import BatchPlanner, Head, IdemKey, IdempotencyRecord, Original
from ledger.program.lots import Family, HoldState, LotTerms
from ledger.program.referrals import ReferralFacts
from ledger.program.tiers import Stats
from ledger.program.vouchers import VoucherEnd, VoucherState
from ledger.storage.schema import MEMBER_TABLES

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


@lru_cache(maxsize=512)  # statements of up to _CHUNK rows run to kilobytes each
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


def load_balances(tx: WriteTx, account_ids: set[str]) -> dict[str, int]:
    """Balances of program and partner accounts (absent: 0)."""
    found: dict[str, int] = {}
    for part in _chunks(sorted(account_ids)):
        rows = tx.execute(
            f"SELECT account_id, balance FROM accounts WHERE account_id IN ({_marks(len(part))})",
            part,
        )
        found.update((account, balance) for account, balance in rows)
    return found


def load_families(tx: WriteTx, owners: set[str], lots: set[str]) -> dict[str, Family]:
    """The members among ``owners`` that exist: each one's sub-accounts
    with points, the terms of their lots, open holds and recent purchases.
    ``lots``: sub-accounts to load even when empty (the lots a reversal
    may give points back to), for their terms."""
    families: dict[str, Family] = {}
    rows: list[tuple[Any, ...]] = []
    for part in _chunks(sorted(owners)):
        rows += tx.execute(
            "SELECT account_id, owner, balance, closed_us, expires_us, matures_us FROM accounts"
            f" WHERE owner IN ({_marks(len(part))}) AND (balance <> 0 OR account_id = owner)",
            part,
        )
    for part in _chunks(sorted(lots)):
        rows += tx.execute(
            "SELECT account_id, owner, balance, closed_us, expires_us, matures_us FROM accounts"
            f" WHERE account_id IN ({_marks(len(part))})",
            part,
        )
    for account, owner, balance, closed_us, expires, matures in sorted(
        rows,
        key=lambda r: r[0] != r[1],  # owner rows first
    ):
        if account == owner:
            families[owner] = Family(owner, {owner: balance}, closed=bool(closed_us))
            continue
        family = families.get(owner)
        if family is None:
            continue
        family.accounts[account] = balance
        if expires or matures:
            family.terms[lot_of(account)] = LotTerms(expires, matures)
    live = set(families)
    for hold in load_open_holds(tx, live, set()).values():
        families[hold.owner].holds[hold.sequence] = hold
    for part in _chunks(sorted(live)):
        for owner, data in tx.execute(
            f"SELECT account_id, data FROM member_stats WHERE account_id IN ({_marks(len(part))})",
            part,
        ):
            families[owner].stats = Stats.from_json(bytes(data))
        for owner, category, last_us in tx.execute(
            "SELECT account_id, category, last_us FROM member_activity"
            f" WHERE account_id IN ({_marks(len(part))})",
            part,
        ):
            families[owner].recent[category] = last_us
    return families


def load_referral_facts(
    tx: WriteTx, pairs: set[tuple[str, str, bytes]], since_us: int
) -> dict[tuple[str, str], ReferralFacts]:
    """For each (referrer, referred, device token): the referrer's and the
    device's referrals since ``since_us``, whether the two members share a
    phone or e-mail lookup token, and the device the referrer was referred
    with."""
    found = {}
    for referrer, referred, device in pairs:
        ((mine,),) = tx.execute(
            "SELECT COUNT(*) FROM referrals WHERE referrer = ? AND created_us > ?",
            (referrer, since_us),
        )
        device_count = 0
        if device:
            ((device_count,),) = tx.execute(
                "SELECT COUNT(*) FROM referrals WHERE device_token = ? AND created_us > ?",
                (device, since_us),
            )
        shared = tx.execute(
            "SELECT 1 FROM member_lookup a JOIN member_lookup b"
            " ON a.kind = b.kind AND a.token = b.token"
            " WHERE a.account_id = ? AND b.account_id = ?",
            (referrer, referred),
        )
        own = tx.execute("SELECT device_token FROM referrals WHERE referred = ?", (referrer,))
        found[(referrer, referred)] = ReferralFacts(
            int(mine), int(device_count), bool(shared), bytes(own[0][0]) if own else b""
        )
    return found


def load_open_holds(tx: WriteTx, owners: set[str], seqs: set[int]) -> dict[int, HoldState]:
    """Open holds of ``owners`` and open holds among ``seqs``."""
    found: list[tuple[Any, ...]] = []
    open_only = " AND NOT EXISTS (SELECT 1 FROM hold_ends e WHERE e.seq = h.seq)"
    for column, values in (("owner", sorted(owners)), ("seq", sorted(seqs))):
        for part in _chunks(values):
            found += tx.execute(
                "SELECT h.seq, h.owner, h.expires_us, h.channel_id FROM holds h"
                f" WHERE h.{column} IN ({_marks(len(part))})" + open_only,
                part,
            )
    heads = {seq: (owner, expires, channel) for seq, owner, expires, channel in found}
    postings: dict[int, list[Posting]] = {}
    for part in _chunks(sorted(heads)):
        for seq, source, target, points in tx.execute(
            "SELECT seq, from_account, to_account, points FROM journal_postings"
            f" WHERE seq IN ({_marks(len(part))}) ORDER BY seq, idx",
            part,
        ):
            postings.setdefault(seq, []).append(Posting(source, target, points))
    return {
        seq: HoldState(seq, owner, tuple(postings.get(seq, ())), expires, channel)
        for seq, (owner, expires, channel) in heads.items()
    }


def load_ended_holds(tx: WriteTx, seqs: set[int]) -> dict[int, tuple[str, int]]:
    """Holds among ``seqs`` that have ended: hold seq -> (owner, ending seq)."""
    found: dict[int, tuple[str, int]] = {}
    for part in _chunks(sorted(seqs)):
        for seq, owner, end_seq in tx.execute(
            "SELECT h.seq, h.owner, e.end_seq FROM holds h JOIN hold_ends e ON e.seq = h.seq"
            f" WHERE h.seq IN ({_marks(len(part))})",
            part,
        ):
            found[seq] = (owner, end_seq)
    return found


def load_vouchers(
    tx: WriteTx, owners: set[str], seqs: set[int]
) -> tuple[dict[int, VoucherState], dict[int, VoucherEnd]]:
    """Open vouchers of ``owners`` and among ``seqs``; how those of ``seqs``
    that are not open ended."""
    found: list[tuple[Any, ...]] = []
    for column, values in (("owner", sorted(owners)), ("seq", sorted(seqs))):
        for part in _chunks(values):
            found += tx.execute(
                "SELECT v.seq, v.owner, v.reward_id, v.valid_until_us, e.end_seq, e.state"
                " FROM vouchers v LEFT JOIN voucher_ends e ON e.seq = v.seq"
                f" WHERE v.{column} IN ({_marks(len(part))})",
                part,
            )
    heads: dict[int, tuple[str, str, int]] = {}
    ended: dict[int, VoucherEnd] = {}
    for seq, owner, reward, until, end_seq, state in found:
        if end_seq is None:
            heads[seq] = (owner, reward, until)
        elif seq in seqs:
            ended[seq] = VoucherEnd(seq, owner, reward, end_seq, state)
    postings: dict[int, list[Posting]] = {}
    for part in _chunks(sorted(heads)):
        for seq, source, target, points in tx.execute(
            "SELECT seq, from_account, to_account, points FROM journal_postings"
            f" WHERE seq IN ({_marks(len(part))}) ORDER BY seq, idx",
            part,
        ):
            postings.setdefault(seq, []).append(Posting(source, target, points))
    open_ = {
        seq: VoucherState(seq, owner, reward, until, tuple(postings.get(seq, ())))
        for seq, (owner, reward, until) in heads.items()
    }
    return open_, ended


def load_reward_stock(tx: WriteTx, reward_ids: set[str]) -> dict[str, int]:
    """Vouchers taken per reward (absent: none)."""
    found: dict[str, int] = {}
    for part in _chunks(sorted(reward_ids)):
        rows = tx.execute(
            f"SELECT reward_id, taken FROM reward_stock WHERE reward_id IN ({_marks(len(part))})",
            part,
        )
        found.update((reward, int(taken)) for reward, taken in rows)
    return found


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


def load_profiles(tx: WriteTx, account_ids: set[str]) -> dict[str, ProfileState]:
    """What a profile write needs of each member: the newest data key
    version, the digests of the stored fields, and the newest commitment
    (looked up through ``profile_commitments``, read from the journal)."""
    found: dict[str, ProfileState] = {}
    for part in _chunks(sorted(account_ids)):
        marks = _marks(len(part))
        for account, version in tx.execute(
            f"SELECT account_id, max(dek_version) FROM member_keys WHERE account_id IN ({marks})"
            " GROUP BY account_id",
            part,
        ):
            found[account] = ProfileState(int(version), {}, None)
        for account, closed in tx.execute(
            f"SELECT account_id, closed_us FROM accounts WHERE account_id IN ({marks})", part
        ):
            if closed:
                found.setdefault(account, ProfileState(0, {}, None)).closed = True
        fields: dict[str, dict[str, bytes]] = {}
        for account, name, blob in tx.execute(
            "SELECT account_id, field, ciphertext FROM member_fields"
            f" WHERE account_id IN ({marks})",
            part,
        ):
            fields.setdefault(account, {})[name] = bytes(blob)
        for account, blobs in fields.items():
            found.setdefault(account, ProfileState(0, {}, None)).stored = stored_digests(blobs)
        for account, seq, kind, details in tx.execute(
            "SELECT c.account_id, c.seq, e.kind, e.details FROM profile_commitments c"
            " LEFT JOIN journal_entries e ON e.seq = c.seq"
            f" WHERE c.account_id IN ({marks}) AND c.seq = (SELECT max(seq)"
            " FROM profile_commitments n WHERE n.account_id = c.account_id)",
            part,
        ):
            state = found.setdefault(account, ProfileState(0, {}, None))
            state.committed = newest_commitment(account, seq, kind or "", bytes(details or b""))
            state.committed_seq = int(seq)
    return found


def task_done(tx: WriteTx, name: str) -> bool:
    return bool(tx.execute("SELECT 1 FROM done_tasks WHERE name = ?", (name,)))


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
    return owner_of(source if is_member_account(source) else target), bytes(details)


def load_originals(tx: WriteTx, seqs: set[int]) -> dict[int, Original]:
    """The entries a batch wants to reverse, with what their reversals
    returned so far, per account they returned to."""
    originals: dict[int, Original] = {}
    for part in _chunks(sorted(seqs)):
        marks = _marks(len(part))
        postings: dict[int, tuple[str, str, list[Posting]]] = {}
        for seq, kind, channel, from_account, to_account, points in tx.execute(
            "SELECT e.seq, e.kind, e.channel_id, p.from_account, p.to_account, p.points"
            " FROM journal_entries e JOIN journal_postings p ON p.seq = e.seq"
            f" WHERE e.seq IN ({marks}) ORDER BY e.seq, p.idx",
            part,
        ):
            postings.setdefault(seq, (kind, channel, []))[2].append(
                Posting(from_account, to_account, points)
            )
        for seq, (kind, channel, found) in postings.items():
            originals[seq] = Original(seq, kind, tuple(found), channel)
        for seq, to_account, total in tx.execute(
            "SELECT e.reverses, p.to_account, SUM(p.points)"
            " FROM journal_entries e JOIN journal_postings p ON p.seq = e.seq"
            f" WHERE e.reverses IN ({marks}) AND e.kind = 'reverse'"
            " GROUP BY e.reverses, p.to_account",
            part,
        ):
            if seq in originals:
                originals[seq].reversed[to_account] = int(total)
    return originals


def journal_balances(tx: WriteTx, owners: Sequence[str]) -> dict[str, int]:
    """Each account of these members' families as the journal's postings
    sum it (not as ``accounts`` says): what a balance is reconciled with."""
    totals: dict[str, int] = {}
    for part in _chunks(sorted(set(owners))):
        for source, target, points in tx.execute(
            "SELECT p.from_account, p.to_account, p.points FROM account_entries ae"
            " JOIN journal_postings p ON p.seq = ae.seq"
            f" WHERE ae.account_id IN ({_marks(len(part))})",
            part,
        ):
            totals[source] = totals.get(source, 0) - int(points)
            totals[target] = totals.get(target, 0) + int(points)
    wanted = set(owners)
    return {a: n for a, n in totals.items() if n and owner_of(a) in wanted}


def load_applied(tx: WriteTx, requests: Sequence[bytes]) -> dict[bytes, int]:
    """Entries already made by these requests (their keyed digests), by the
    journal itself: a request whose idempotency record is gone (deleted)
    is still recognised here."""
    found: dict[bytes, int] = {}
    for part in _chunks(sorted(set(requests))):
        for request, seq in tx.execute(
            f"SELECT request, seq FROM journal_entries WHERE request IN ({_marks(len(part))})",
            part,
        ):
            found[bytes(request)] = int(seq)
    return found


def load_idempotency(
    tx: WriteTx, keys: set[IdemKey], digest: IdempotencyDigest | None = None
) -> dict[IdemKey, IdempotencyRecord]:
    """Records for the batch's raw (channel, key)s, looked up by primary key.

    With ``digest`` the records are keyed, and named, as the planner sees
    digested commands: (channel, digest.key(...)), the fingerprint keyed.
    A row from before digests (the raw key, an unkeyed fingerprint) is found
    too and returned in that form."""
    wanted: dict[tuple[str, str], IdemKey] = {}  # stored form -> the planner's key
    for channel, key in keys:
        if digest is None:
            wanted[(channel, key)] = (channel, key)
            continue
        planner_key = (channel, digest.key(channel, key))
        wanted[planner_key] = planner_key
        wanted[(channel, key)] = planner_key  # a row written before digests
    by_channel: dict[str, list[str]] = {}
    for channel, stored in wanted:
        by_channel.setdefault(channel, []).append(stored)
    found: dict[IdemKey, IdempotencyRecord] = {}
    for channel, channel_keys in by_channel.items():
        for part in _chunks(sorted(channel_keys)):
            rows = tx.execute(
                "SELECT channel_id, idempotency_key, fingerprint, response, seq"
                " FROM idempotency_keys WHERE channel_id = ?"
                f" AND idempotency_key IN ({_marks(len(part))})",
                [channel, *part],
            )
            for channel_id, stored, fingerprint, response, seq in rows:
                planner_key = wanted[(channel_id, stored)]
                fp = bytes(fingerprint)
                if digest is not None and not is_digest(stored):
                    fp = digest.fingerprint(fp)
                found[planner_key] = IdempotencyRecord(
                    channel_id, planner_key[1], fp, bytes(response), seq
                )
    return found


_UPSERT_SET = "balance = excluded.balance, last_seq = excluded.last_seq"
_UPSERT_BALANCES = f" ON CONFLICT (account_id) DO UPDATE SET {_UPSERT_SET}"
_ACCOUNT_COLUMNS = (
    "account_id",
    "balance",
    "last_seq",
    "opened_us",
    "owner",
    "expires_us",
    "matures_us",
    "due_us",
)


def _account_row(planner: BatchPlanner, account: str, seq: int, opened: int) -> tuple[object, ...]:
    """The row of a touched account; the terms only matter when the row is
    new (the upsert updates balance and last_seq alone)."""
    balance = planner.balance_of(account)
    parsed = parse_member_account(account)
    if parsed is None:
        return (account, balance, seq, opened, "", 0, 0, 0)
    terms = planner.families[parsed.owner].terms_of(parsed.lot)
    due = {"lot": terms.expires_us, "pending": terms.matures_us}.get(parsed.form, 0)
    return (account, balance, seq, opened, parsed.owner, terms.expires_us, terms.matures_us, due)


def write_batch(tx: WriteTx, planner: BatchPlanner) -> None:
    """Persist everything the planner decided, in the caller's transaction."""
    now = planner.now_us
    insert_rows(
        tx, "accounts", _ACCOUNT_COLUMNS, [(a, 0, 0, now, a, 0, 0, 0) for a in planner.opened]
    )
    if planner.entries:
        insert_rows(
            tx,
            "journal_entries",
            (
                "seq",
                "time_us",
                "kind",
                "channel_id",
                "reverses",
                "details",
                "prev_hash",
                "hash",
                "request",
            ),
            [
                (
                    e.sequence,
                    e.time_us,
                    e.kind,
                    e.channel_id,
                    e.reverses,
                    e.details,
                    e.prev_hash,
                    h,
                    e.request or None,
                )
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
        # a member's history lists every entry of its family under its id; a
        # partner's clearing account its exchanges (gross flows, GetLiability);
        # a store's shortfall account its shortfall entries (docs/outage.md)
        history = sorted(
            {
                (owner_of(a), e.sequence)
                for e, _ in planner.entries
                for p in e.postings
                for a in (p.from_account, p.to_account)
                if is_member_account(a) or a.startswith((PARTNER_PREFIX, SHORTFALL_PREFIX))
            }
        )
        insert_rows(tx, "account_entries", ("account_id", "seq"), history)
        # one statement for the batch: updates existing accounts, creates
        # the sub-accounts (lots, holds) and program accounts first used
        insert_rows(
            tx,
            "accounts",
            _ACCOUNT_COLUMNS,
            [_account_row(planner, a, seq, now) for a, seq in planner.touched.items()],
            suffix=_UPSERT_BALANCES,
        )
    if planner.entries or planner.erased:
        head = planner.head
        tx.execute(
            "UPDATE journal_head SET seq = ?, hash = ?, time_us = ?, epoch = ? WHERE id = 1",
            (head.sequence, head.hash, head.time_us, head.epoch),
        )
    insert_rows(
        tx,
        "holds",
        ("seq", "owner", "expires_us", "channel_id"),
        [(h.sequence, h.owner, h.expires_us, h.channel_id) for h in planner.new_holds],
    )
    insert_rows(tx, "hold_ends", ("seq", "end_seq"), planner.ended_holds)
    _write_vouchers(tx, planner)
    _write_activity(tx, planner)
    _write_program(tx, planner)
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


def _write_vouchers(tx: WriteTx, planner: BatchPlanner) -> None:
    """Vouchers issued and ended, and the stock they take (docs/program-rules.md §11)."""
    insert_rows(
        tx,
        "vouchers",
        ("seq", "owner", "reward_id", "valid_until_us", "channel_id"),
        [
            (v.sequence, v.owner, v.reward_id, v.valid_until_us, _channel_of(planner, v.sequence))
            for v in planner.new_vouchers
        ],
    )
    insert_rows(
        tx,
        "voucher_ends",
        ("seq", "end_seq", "state"),
        [(e.sequence, e.end_sequence, e.state) for e in planner.voucher_ends],
    )
    insert_rows(
        tx,
        "reward_stock",
        ("reward_id", "taken"),
        [(r, n) for r, n in sorted(planner.stock_deltas.items()) if n],
        suffix=" ON CONFLICT (reward_id) DO UPDATE SET taken = reward_stock.taken + excluded.taken",
    )
    insert_rows(
        tx,
        "account_entries",  # a member's history lists how its vouchers ended too
        ("account_id", "seq"),
        sorted({(e.owner, e.end_sequence) for e in planner.voucher_ends} - _in_history(planner)),
    )


def _channel_of(planner: BatchPlanner, seq: int) -> str:
    return next(e.channel_id for e, _ in planner.entries if e.sequence == seq)


def _in_history(planner: BatchPlanner) -> set[tuple[str, int]]:
    """(member, entry) rows write_batch already indexed: entries with a posting of theirs."""
    return {
        (owner_of(a), e.sequence)
        for e, _ in planner.entries
        for p in e.postings
        for a in (p.from_account, p.to_account)
        if is_member_account(a)
    }


def _write_program(tx: WriteTx, planner: BatchPlanner) -> None:
    """Tiers and referrals: stats of changed members, tier history,
    referrals registered and refused."""
    now = planner.now_us
    changed = [f for f in planner.families.values() if f.stats.changed and not f.closed]
    insert_rows(
        tx,
        "member_stats",
        ("account_id", "data", "review_us"),
        [(f.owner, f.stats.to_json(), f.stats.review_us) for f in changed],
        suffix=" ON CONFLICT (account_id) DO UPDATE SET data = excluded.data,"
        " review_us = excluded.review_us",
    )
    for f in changed:
        f.stats.changed = False
    insert_rows(
        tx,
        "tier_changes",
        ("account_id", "idx", "time_us", "from_tier", "to_tier", "reason"),
        [(a, i, now, old, new, why) for a, i, old, new, why in planner.tier_changes],
    )
    insert_rows(
        tx,
        "referrals",
        ("referred", "referrer", "device_token", "created_us"),
        [(r.referred, r.account, r.device_token, now) for r in planner.new_referrals],
    )
    insert_rows(
        tx,
        "referral_refusals",
        ("referrer", "referred", "reason", "time_us"),
        [(a, b, why, now) for a, b, why in planner.refusals],
    )


def _write_activity(tx: WriteTx, planner: BatchPlanner) -> None:
    rows = [
        (f.owner, category, last)
        for f in planner.families.values()
        if f.recent_changed and not f.closed
        for category, last in sorted(f.recent.items())
    ]
    for f in planner.families.values():
        f.recent_changed = False
    insert_rows(
        tx,
        "member_activity",
        ("account_id", "category", "last_us"),
        rows,
        suffix=" ON CONFLICT (account_id, category) DO UPDATE SET last_us = excluded.last_us",
    )


def _write_profiles(tx: WriteTx, planner: BatchPlanner) -> None:
    """Profile writes (updates, data-key rotations) in the order planned,
    and the index of every profile entry of the batch."""
    now = planner.now_us
    for w in planner.profile_writes:
        if w.new_wrapped:
            insert_rows(
                tx,
                "member_keys",
                ("account_id", "dek_version", "kek_version", "wrapped", "created_us"),
                [(w.account, w.dek_version, w.new_kek_version, w.new_wrapped, now)],
            )
        names = [n for n, _ in w.fields] + list(w.cleared)
        if names:
            tx.execute(
                "DELETE FROM member_fields WHERE account_id = ?"
                f" AND field IN ({_marks(len(names))})",
                [w.account, *names],
            )
        insert_rows(
            tx,
            "member_fields",
            ("account_id", "field", "ciphertext", "updated_us"),
            [(w.account, n, blob, now) for n, blob in w.fields],
        )
        if w.lookup_kinds:
            tx.execute(
                "DELETE FROM member_lookup WHERE account_id = ?"
                f" AND kind IN ({_marks(len(w.lookup_kinds))})",
                [w.account, *w.lookup_kinds],
            )
        insert_rows(
            tx,
            "member_lookup",
            ("kind", "token", "account_id"),
            sorted({(k, t, w.account) for k, t in w.lookups}),
        )
    insert_rows(tx, "profile_commitments", ("account_id", "seq"), planner.commitments)


def _write_members(tx: WriteTx, planner: BatchPlanner) -> None:
    """Sealed profiles of enrolled members, profile writes; erasures
    (crypto-shredding) last, so nothing written before them survives."""
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
    _write_profiles(tx, planner)
    if planner.erased:
        accounts = [cmd.account for cmd, _ in planner.erased]
        kek: dict[str, int] = {}  # newest KEK version wrapping each one's keys
        for part in _chunks(accounts):
            marks = _marks(len(part))
            # close first: the row lock makes a concurrent key rotation or
            # profile update (which lock the account row) finish before the
            # deletes below start, so they see its rows (PostgreSQL)
            tx.execute(f"UPDATE accounts SET closed_us = ? WHERE owner IN ({marks})", [now, *part])
            for account, version in tx.execute(
                "SELECT account_id, max(kek_version) FROM member_keys"
                f" WHERE account_id IN ({marks}) GROUP BY account_id",
                part,
            ):
                kek[account] = int(version)
            for table in MEMBER_TABLES:
                tx.execute(f"DELETE FROM {table} WHERE account_id IN ({marks})", part)
        insert_rows(
            tx,
            "member_erasures",
            ("account_id", "erased_us", "reason", "forfeit_seq", "kek_version"),
            [
                (cmd.account, now, cmd.reason, seq, kek.get(cmd.account))
                for cmd, seq in planner.erased
            ],
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
