"""Profile freshness: a member's stored fields must be the ones the journal
last committed to (audit/profile_format.py, docs/field-encryption.md §9).

Encryption alone cannot tell a current ciphertext from an older one of the
same member and field; the newest ``profile`` entry of the member can.
Every reader of fields (the servers' reads, the appender before it commits
a new profile) compares the SHA-256 of each stored ciphertext with that
entry, and refuses with DATA_LOSS on any difference: a field put back from
an older copy, edited, added or deleted outside the ledger.

Members stored before commitments existed have fields and no commitment;
the server commits them once at start-up (``LEGACY_TASK``). Until that task
is recorded done, such a member is read as before; afterwards a member
with fields and no commitment is refused like any other mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from audit.profile_format import ProfileCommitment, field_digest
from ledger.errors import IntegrityError

log = structlog.get_logger("ledger.members")

LEGACY_TASK = "profile-commitments"


@dataclass(slots=True)
class ProfileState:
    """What a writer knows of one member's profile inside its transaction."""

    dek_version: int  # the member's newest data key version (0: none)
    stored: dict[str, bytes]  # field -> digest of the stored ciphertext
    committed: dict[str, bytes] | None  # the newest commitment; None: none yet
    committed_seq: int = 0
    closed: bool = False  # the member was erased


def stored_digests(fields: Mapping[str, bytes]) -> dict[str, bytes]:
    return {name: field_digest(blob) for name, blob in fields.items()}


def newest_commitment(account: str, seq: int, kind: str, details: bytes) -> dict[str, bytes]:
    """The digests the profile entry ``seq`` commits to for ``account``;
    IntegrityError when the index points at anything else."""
    try:
        commitment = ProfileCommitment.decode(details)
    except ValueError:
        commitment = None
    if kind != "profile" or commitment is None or commitment.account != account:
        log.critical("profile_commitment_not_in_journal", member=account, sequence=seq)
        raise IntegrityError(
            f"member data: profile commitment {seq} is not a profile entry of this member "
            "(the index was edited outside the ledger); refused (report it to security)"
        )
    return commitment.digests


def check_fresh(
    account: str,
    stored: Mapping[str, bytes],
    committed: Mapping[str, bytes] | None,
    *,
    committed_seq: int = 0,
    legacy_ok: bool,
) -> None:
    """IntegrityError (DATA_LOSS) unless the stored field digests are
    exactly the committed ones. The message names the first field that
    differs, never a value."""
    if committed is None:
        if not stored or legacy_ok:
            return
        log.critical("profile_not_committed", member=account)
        raise IntegrityError(
            "member data: the member's fields have no profile commitment in the journal "
            "(written outside the ledger?); refused (report it to security)"
        )
    if dict(stored) == dict(committed):
        return
    differ = sorted(
        n for n in stored.keys() | committed.keys() if stored.get(n) != committed.get(n)
    )
    log.critical("profile_not_fresh", member=account, fields=differ, sequence=committed_seq)
    raise IntegrityError(
        f"member data: field {differ[0]} is not the one the journal last committed "
        f"(entry {committed_seq}): put back or edited outside the ledger; refused "
        "(report it to security)"
    )
