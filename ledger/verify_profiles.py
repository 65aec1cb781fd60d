"""What ``loyalty-ledger verify`` checks of members' profiles (profile
freshness, ledger/members/freshness.py), from the database alone:

- the index ``profile_commitments`` is exactly the journal's ``profile``
  entries: each row names a profile entry of its member, and there are as
  many rows as profile entries (so a row deleted to hide a newer
  commitment, which readers would not notice, is found here);
- every member's stored fields are the ones its newest commitment names
  (SHA-256 of each ciphertext; no field more, none less), including open
  members whose field rows were all deleted;
- once the start-up task has committed older profiles, no member holds
  fields without a commitment.

Field names appear in problems, values never (they are not decrypted).
Streams the tables in chunks; memory is bounded by the chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.profile_format import KIND_PROFILE, ProfileCommitment, ProfileFormatError
from ledger.members.freshness import LEGACY_TASK, stored_digests
from ledger.storage.database import Database
from ledger.storage.schema import (
    accounts,
    done_tasks,
    journal_entries,
    member_fields,
    profile_commitments,
)

CHUNK = 500


@dataclass(frozen=True, slots=True)
class ProfileProblem:
    member: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"member {self.member}: {self.check}: {self.message}"


def verify_profiles(db: Database) -> tuple[int, list[ProfileProblem]]:
    """(members whose fields were checked, problems)."""
    problems: list[ProfileProblem] = []
    # one connection streams the field rows, the other looks commitments up
    with db.reader.connect() as conn, db.reader.connect() as lookup:
        _check_index(conn, problems)
        legacy_done = (
            conn.execute(
                sa.select(done_tasks.c.name).where(done_tasks.c.name == LEGACY_TASK)
            ).first()
            is not None
        )
        checked = 0
        for group in _chunks(_stored_fields(conn)):
            newest = _newest(lookup, [a for a, _ in group])
            for account, fields in group:
                checked += 1
                _compare(
                    account, stored_digests(fields), newest.get(account), legacy_done, problems
                )
        # open members with commitments and no field rows at all
        no_fields = (
            sa.select(profile_commitments.c.account_id)
            .join(accounts, accounts.c.account_id == profile_commitments.c.account_id)
            .where(
                accounts.c.closed_us == 0,
                ~sa.exists(
                    sa.select(member_fields.c.account_id).where(
                        member_fields.c.account_id == profile_commitments.c.account_id
                    )
                ),
            )
            .distinct()
        )
        bare = list(conn.execute(no_fields).scalars())
        for part in range(0, len(bare), CHUNK):
            ids = bare[part : part + CHUNK]
            newest = _newest(conn, ids)
            for account in ids:
                checked += 1
                _compare(account, {}, newest.get(account), legacy_done, problems)
    return checked, problems


def _compare(
    account: str,
    stored: dict[str, bytes],
    committed: tuple[int, dict[str, bytes]] | None,
    legacy_done: bool,
    problems: list[ProfileProblem],
) -> None:
    if committed is None:
        if stored and legacy_done:
            problems.append(
                ProfileProblem(account, "profile", "holds fields the journal never committed to")
            )
        return
    seq, digests = committed
    differ = sorted(n for n in stored.keys() | digests.keys() if stored.get(n) != digests.get(n))
    for name in differ:
        what = (
            "is stored but not committed"
            if name not in digests
            else "is committed but missing"
            if name not in stored
            else "differs from the committed ciphertext"
        )
        problems.append(ProfileProblem(account, "profile", f"field {name} {what} (entry {seq})"))


def _check_index(conn: Connection, problems: list[ProfileProblem]) -> None:
    """Each index row names a profile entry of its member; as many rows as
    profile entries."""
    entries = conn.execute(
        sa.select(sa.func.count()).where(journal_entries.c.kind == KIND_PROFILE)
    ).scalar_one()
    rows = conn.execute(
        sa.select(
            profile_commitments.c.account_id,
            profile_commitments.c.seq,
            journal_entries.c.kind,
            journal_entries.c.details,
        ).outerjoin(journal_entries, journal_entries.c.seq == profile_commitments.c.seq)
    )
    indexed = 0
    for account, seq, kind, details in rows:
        indexed += 1
        if kind != KIND_PROFILE or _account_of(bytes(details or b"")) != account:
            problems.append(
                ProfileProblem(account, "index", f"commitment row {seq} is no profile entry of it")
            )
    if indexed != entries:
        problems.append(
            ProfileProblem(
                "*",
                "index",
                f"the journal holds {entries} profile entries, the index {indexed} rows "
                "(a commitment hidden from readers?)",
            )
        )


def _account_of(details: bytes) -> str:
    try:
        return ProfileCommitment.decode(details).account
    except ProfileFormatError:
        return ""


def _stored_fields(conn: Connection) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(member, field -> ciphertext), member by member."""
    rows = conn.execution_options(yield_per=5000).execute(
        sa.select(
            member_fields.c.account_id, member_fields.c.field, member_fields.c.ciphertext
        ).order_by(member_fields.c.account_id)
    )
    current, fields = "", dict[str, bytes]()
    for account, name, blob in rows:
        if account != current and current:
            yield current, fields
            fields = {}
        current = account
        fields[name] = bytes(blob)
    if current:
        yield current, fields


def _chunks(
    items: Iterator[tuple[str, dict[str, bytes]]],
) -> Iterator[list[tuple[str, dict[str, bytes]]]]:
    group = []
    for item in items:
        group.append(item)
        if len(group) == CHUNK:
            yield group
            group = []
    if group:
        yield group


def _newest(conn: Connection, ids: list[str]) -> dict[str, tuple[int, dict[str, bytes]]]:
    """The newest commitment of each member: (sequence, digests)."""
    newest = (
        sa.select(
            profile_commitments.c.account_id, sa.func.max(profile_commitments.c.seq).label("seq")
        )
        .where(profile_commitments.c.account_id.in_(ids))
        .group_by(profile_commitments.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(newest.c.account_id, newest.c.seq, journal_entries.c.details).outerjoin(
            journal_entries, journal_entries.c.seq == newest.c.seq
        )
    )
    out = {}
    for account, seq, details in rows:
        try:
            out[account] = (int(seq), ProfileCommitment.decode(bytes(details or b"")).digests)
        except ProfileFormatError:
            out[account] = (int(seq), {})  # reported by _check_index
    return out
