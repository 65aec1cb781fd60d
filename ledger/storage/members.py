"""Member rows: wrapped data keys, field ciphertexts, blind-index tokens.

Every write of a member's fields goes through the appender: enrollment
and erasure (they open and close a journal account), updates and data-key
rotations (``WriteProfile``: each commits the fields to the journal in a
``profile`` entry, in one transaction with the rows). This module holds
the reads, which check the fields against that commitment, and the
maintenance of wrapped keys (KEK rewrap, the first-key backfill), each in
one short transaction on the writer engine. Those writers take turns with
erasure: SQLite transactions are BEGIN IMMEDIATE, and on PostgreSQL each
first locks the member's account row (FOR UPDATE) and checks it is open;
erasure updates that row before it deletes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.errors import MemberErasedError, NotFoundError
from ledger.members.freshness import LEGACY_TASK, check_fresh, newest_commitment, stored_digests
from ledger.members.vault import StoredKey
from ledger.storage.database import Database
from ledger.storage.schema import (
    accounts,
    done_tasks,
    journal_entries,
    member_fields,
    member_keys,
    member_lookup,
    profile_commitments,
)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    account_id: str
    keys: tuple[StoredKey, ...]
    fields: Mapping[str, bytes]


def _keys(conn: Connection, account: str) -> tuple[StoredKey, ...]:
    """The member's wrapped keys (writers lock the account row first: _lock_account)."""
    query = (
        sa.select(member_keys.c.dek_version, member_keys.c.kek_version, member_keys.c.wrapped)
        .where(member_keys.c.account_id == account)
        .order_by(member_keys.c.dek_version)
    )
    return tuple(StoredKey(v, k, bytes(w)) for v, k, w in conn.execute(query))


def _fields(conn: Connection, account: str) -> dict[str, bytes]:
    rows = conn.execute(
        sa.select(member_fields.c.field, member_fields.c.ciphertext).where(
            member_fields.c.account_id == account
        )
    )
    return {name: bytes(blob) for name, blob in rows}


def _fresh_fields(conn: Connection, account: str) -> dict[str, bytes]:
    """The member's fields, checked against the newest profile commitment
    in the journal (ledger/members/freshness.py): IntegrityError when a
    field was put back, edited, added or deleted outside the ledger."""
    fields = _fields(conn, account)
    seq = conn.execute(
        sa.select(sa.func.max(profile_commitments.c.seq)).where(
            profile_commitments.c.account_id == account
        )
    ).scalar()
    committed = None
    if seq is not None:
        row = conn.execute(
            sa.select(journal_entries.c.kind, journal_entries.c.details).where(
                journal_entries.c.seq == seq
            )
        ).first()
        kind, details = (row.kind, bytes(row.details)) if row is not None else ("", b"")
        committed = newest_commitment(account, int(seq), kind, details)
    legacy_ok = committed is None and bool(fields) and _legacy_ok(conn)
    check_fresh(
        account, stored_digests(fields), committed, committed_seq=seq or 0, legacy_ok=legacy_ok
    )
    return fields


def _legacy_ok(conn: Connection) -> bool:
    """Profiles from before commitments are read until the start-up task
    has committed them (then a profile without commitment is refused)."""
    done = conn.execute(sa.select(done_tasks.c.name).where(done_tasks.c.name == LEGACY_TASK))
    return done.first() is None


def _require_member(conn: Connection, account: str, keys: tuple[StoredKey, ...]) -> None:
    if keys:
        return
    closed = conn.execute(
        sa.select(accounts.c.closed_us).where(accounts.c.account_id == account)
    ).scalar()
    if closed:
        raise MemberErasedError()
    raise NotFoundError("member_account_id: no such member")


def _lock_account(conn: Connection, account: str) -> None:
    """Take the member's account row lock (PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serializes writers), then check it is open. Every
    writer of a member's keys and fields (update, key rotation, erasure in
    the appender) takes this lock first, so they take turns and each sees
    the rows the one before it committed."""
    query = sa.select(accounts.c.closed_us).where(accounts.c.account_id == account)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    closed = conn.execute(query).first()
    if closed is None:
        raise NotFoundError("member_account_id: no such member")
    if closed[0]:
        raise MemberErasedError()


class MemberStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        return self._db

    def load(self, account: str) -> MemberRecord:
        """NotFoundError (MemberErasedError for an erased member)."""
        with self._db.reader.connect() as conn:
            keys = _keys(conn, account)
            _require_member(conn, account, keys)
            return MemberRecord(account, keys, _fresh_fields(conn, account))

    def keys(self, account: str) -> tuple[StoredKey, ...]:
        """The member's wrapped data keys; empty once erased (or never made)."""
        with self._db.reader.connect() as conn:
            return _keys(conn, account)

    def candidates(self, kind: str, token: bytes) -> list[MemberRecord]:
        """Members whose ``kind`` token is ``token`` (false positives
        included: the caller decrypts and compares)."""
        with self._db.reader.connect() as conn:
            found = conn.execute(
                sa.select(member_lookup.c.account_id)
                .where(member_lookup.c.kind == kind, member_lookup.c.token == token)
                .order_by(member_lookup.c.account_id)
                .limit(100)
            ).scalars()
            records = []
            for account in found:
                keys = _keys(conn, account)
                if keys:
                    records.append(MemberRecord(account, keys, _fresh_fields(conn, account)))
            return records

    def keys_not_under(self, kek_version: int, limit: int) -> list[tuple[str, StoredKey]]:
        """Wrapped DEKs still under another KEK version than ``kek_version``."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                sa.select(member_keys)
                .where(member_keys.c.kek_version != kek_version)
                .order_by(member_keys.c.account_id, member_keys.c.dek_version)
                .limit(limit)
            )
            return [
                (r.account_id, StoredKey(r.dek_version, r.kek_version, bytes(r.wrapped)))
                for r in rows
            ]

    def replace_wrapped_many(self, replacements: Iterable[tuple[str, StoredKey, StoredKey]]) -> int:
        """Compare-and-set rewrapped DEKs in one transaction: a row is
        replaced only if it still holds the old wrap (rows erased or already
        rewrapped meanwhile are left alone). Returns how many changed."""
        changed = 0
        with self._db.writer.begin() as conn:
            for account, old, new in replacements:
                result = conn.execute(
                    sa.update(member_keys)
                    .where(
                        member_keys.c.account_id == account,
                        member_keys.c.dek_version == old.dek_version,
                        member_keys.c.kek_version == old.kek_version,
                        member_keys.c.wrapped == old.wrapped,
                    )
                    .values(kek_version=new.kek_version, wrapped=new.wrapped)
                )
                changed += result.rowcount
        return changed

    def kek_versions_in_use(self) -> dict[int, int]:
        """KEK version -> number of wrapped DEKs under it."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                sa.select(member_keys.c.kek_version, sa.func.count()).group_by(
                    member_keys.c.kek_version
                )
            )
            return {int(v): int(n) for v, n in rows}


def accounts_without_keys(db: Database) -> list[str]:
    """Open member accounts that have no data key (opened before 0004)."""
    with db.reader.connect() as conn:
        missing = sa.select(member_keys.c.account_id).where(
            member_keys.c.account_id == accounts.c.account_id
        )
        return list(
            conn.execute(
                sa.select(accounts.c.account_id).where(
                    accounts.c.closed_us == 0,
                    accounts.c.account_id.like("mbr\\_%", escape="\\"),
                    ~sa.exists(missing),
                )
            ).scalars()
        )


def uncommitted_profiles(db: Database, limit: int) -> list[str]:
    """Members with fields and no profile commitment (stored before
    commitments existed, ledger/members/freshness.py)."""
    with db.reader.connect() as conn:
        committed = sa.select(profile_commitments.c.account_id).where(
            profile_commitments.c.account_id == member_fields.c.account_id
        )
        return list(
            conn.execute(
                sa.select(member_fields.c.account_id)
                .where(~sa.exists(committed))
                .group_by(member_fields.c.account_id)
                .order_by(member_fields.c.account_id)
                .limit(limit)
            ).scalars()
        )


def add_first_key(db: Database, account: str, key: StoredKey, now_us: int) -> bool:
    """Give an account its first data key, unless it got one meanwhile."""
    with db.writer.begin() as conn:
        _lock_account(conn, account)
        if _keys(conn, account):
            return False
        conn.execute(
            sa.insert(member_keys).values(
                account_id=account,
                dek_version=key.dek_version,
                kek_version=key.kek_version,
                wrapped=key.wrapped,
                created_us=now_us,
            )
        )
        return True


def newest_key(db: Database) -> tuple[str, StoredKey] | None:
    """The most recently created wrapped data key, if any."""
    with db.reader.connect() as conn:
        row = conn.execute(
            sa.select(member_keys).order_by(member_keys.c.created_us.desc()).limit(1)
        ).first()
    if row is None:
        return None
    return row.account_id, StoredKey(row.dek_version, row.kek_version, bytes(row.wrapped))


def task_done(db: Database, name: str) -> bool:
    with db.reader.connect() as conn:
        found = conn.execute(sa.select(done_tasks.c.name).where(done_tasks.c.name == name))
        return found.first() is not None


def mark_task_done(db: Database, name: str, now_us: int) -> None:
    """Idempotent: a second server finishing the same task changes nothing."""
    try:
        with db.writer.begin() as conn:
            if not conn.execute(
                sa.select(done_tasks.c.name).where(done_tasks.c.name == name)
            ).first():
                conn.execute(sa.insert(done_tasks).values(name=name, done_us=now_us))
    except sa.exc.IntegrityError:  # PostgreSQL: raced with another server
        pass
