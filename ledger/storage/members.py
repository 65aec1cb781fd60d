"""Member rows: wrapped data keys, field ciphertexts, blind-index tokens.

Enrollment and erasure go through the appender (they open and close a
journal account, in one transaction with it); this module holds the reads,
profile updates and key maintenance, each in one short transaction on the
writer engine. Writers of one member take turns: SQLite transactions are
BEGIN IMMEDIATE, and on PostgreSQL each writer first locks the member's
account row (FOR UPDATE) and checks it is open; erasure updates that row
before it deletes anything. So an update or a key rotation never lands
after an erasure (no data under a destroyed key, no lookup token left
behind), and never misses a key version another writer just added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.errors import MemberErasedError, NotFoundError
from ledger.members.vault import StoredKey
from ledger.storage.database import Database
from ledger.storage.schema import (
    accounts,
    done_tasks,
    member_fields,
    member_keys,
    member_lookup,
)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    account_id: str
    keys: tuple[StoredKey, ...]
    fields: Mapping[str, bytes]


Sealer = Callable[[MemberRecord], tuple[Mapping[str, bytes], Iterable[tuple[str, bytes]]]]


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

    def load(self, account: str) -> MemberRecord:
        """NotFoundError (MemberErasedError for an erased member)."""
        with self._db.reader.connect() as conn:
            keys = _keys(conn, account)
            _require_member(conn, account, keys)
            return MemberRecord(account, keys, _fields(conn, account))

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
                    records.append(MemberRecord(account, keys, _fields(conn, account)))
            return records

    def update(
        self,
        account: str,
        *,
        cleared: Iterable[str],
        lookup_kinds: Iterable[str],
        seal: Sealer,
        now_us: int,
    ) -> None:
        """Replace fields with what ``seal`` encrypts (under the member's
        current key, loaded inside this transaction), delete ``cleared``
        fields, and replace the lookup tokens of ``lookup_kinds``."""
        with self._db.writer.begin() as conn:
            _lock_account(conn, account)
            keys = _keys(conn, account)
            _require_member(conn, account, keys)
            blobs, lookups = seal(MemberRecord(account, keys, {}))
            names = [*blobs, *cleared]
            if names:
                conn.execute(
                    sa.delete(member_fields).where(
                        member_fields.c.account_id == account, member_fields.c.field.in_(names)
                    )
                )
            if blobs:
                conn.execute(
                    sa.insert(member_fields),
                    [
                        {"account_id": account, "field": n, "ciphertext": b, "updated_us": now_us}
                        for n, b in blobs.items()
                    ],
                )
            kinds = list(lookup_kinds)
            if kinds:
                conn.execute(
                    sa.delete(member_lookup).where(
                        member_lookup.c.account_id == account, member_lookup.c.kind.in_(kinds)
                    )
                )
            rows = [{"kind": k, "token": t, "account_id": account} for k, t in lookups]
            if rows:
                conn.execute(sa.insert(member_lookup), rows)

    def rotate_member_key(
        self,
        account: str,
        reseal: Callable[[MemberRecord], tuple[StoredKey, dict[str, bytes]]],
        now_us: int,
    ) -> int:
        """DEK rotation: ``reseal`` makes a new DEK version and re-encrypts
        every field under it; returns the new version. Old versions stay
        (wrapped) for journal details written under them."""
        with self._db.writer.begin() as conn:
            _lock_account(conn, account)
            keys = _keys(conn, account)
            _require_member(conn, account, keys)
            new_key, blobs = reseal(MemberRecord(account, keys, _fields(conn, account)))
            conn.execute(
                sa.insert(member_keys),
                [
                    {
                        "account_id": account,
                        "dek_version": new_key.dek_version,
                        "kek_version": new_key.kek_version,
                        "wrapped": new_key.wrapped,
                        "created_us": now_us,
                    }
                ],
            )
            for name, blob in blobs.items():
                conn.execute(
                    sa.update(member_fields)
                    .where(member_fields.c.account_id == account, member_fields.c.field == name)
                    .values(ciphertext=blob, updated_us=now_us)
                )
            return new_key.dek_version

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
