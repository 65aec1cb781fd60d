"""Key rotation: rewrap every data key under a new KEK, and rotate one
member's data key.

KEK rotation (``rewrap``) touches only ``member_keys``: each wrapped DEK is
unwrapped with its old KEK version and wrapped again under the current
one. Field ciphertexts and the journal are never rewritten (the DEKs do
not change). It is resumable and idempotent: it works on whatever is still
under another KEK version, in batches, and each row is replaced only if it
still holds what was read (compare-and-set), so a concurrent erasure or a
second rewrap run is never overwritten. Once ``versions_in_use`` shows no
DEK under an old KEK version, that version can be retired.

DEK rotation (``rotate_member_key``) re-encrypts one member's fields under
a new DEK version. The old DEK versions stay, wrapped, because journal
details written under them cannot be re-encrypted (the journal is
append-only); erasure destroys all of them. It goes through the writer:
the new key, the re-encrypted fields and their profile commitment (a
journal ``profile`` entry, ledger/members/freshness.py) land together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ledger.commands import Command, WriteProfile
from ledger.errors import LedgerError, ProfileChangedError
from ledger.keys.errors import DecryptionError, KeysError
from ledger.keys.field_cipher import FieldCipher, new_data_key
from ledger.members.freshness import LEGACY_TASK, stored_digests
from ledger.members.vault import MemberVault
from ledger.storage.database import Database
from ledger.storage.members import (
    MemberStore,
    accounts_without_keys,
    add_first_key,
    mark_task_done,
    newest_key,
    task_done,
    uncommitted_profiles,
)

BATCH = 500
SYSTEM_CHANNEL = "program"  # the channel of entries the ledger makes by itself
_ROTATE_ATTEMPTS = 3


class BlockingJournal(Protocol):
    """The writer's blocking entry points (ledger/appender.py)."""

    def append_blocking(self, command: Command) -> bytes: ...

    def append_all_blocking(self, commands: list[Command]) -> list[bytes | LedgerError]: ...


@dataclass(slots=True)
class RewrapResult:
    kek_version: int
    rewrapped: int = 0
    skipped: int = 0  # changed under us (erased, or rewrapped by another run)


def rewrap(
    store: MemberStore,
    vault: MemberVault,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> RewrapResult:
    """Rewrap every DEK not under the keyring's current KEK version."""
    target = vault.keyring.current_version()
    result = RewrapResult(target)
    seen: set[tuple[str, int, int]] = set()
    while True:
        pending = [
            (a, k)
            for a, k in store.keys_not_under(target, batch + len(seen))
            if (a, k.dek_version, k.kek_version) not in seen
        ][:batch]
        if not pending:
            return result
        replacements = []
        for account, old in pending:
            seen.add((account, old.dek_version, old.kek_version))
            dek = vault.unwrap(account, old)
            replacements.append((account, old, vault.wrap(account, old.dek_version, dek)))
        done = store.replace_wrapped_many(replacements)
        result.rewrapped += done
        result.skipped += len(replacements) - done
        if progress is not None:
            progress(result.rewrapped)


def rotate_member_key(
    journal: BlockingJournal, store: MemberStore, vault: MemberVault, account: str
) -> int:
    """Re-encrypt one member's fields under a new DEK version; returns it.
    The writer stores the key, the fields and their profile commitment in
    one transaction, and refuses if the fields changed since they were
    read (then this seals again)."""
    for attempt in range(_ROTATE_ATTEMPTS):
        record = store.load(account)  # checked against the newest commitment
        old = vault.cipher(account, record.keys)
        version = max(k.dek_version for k in record.keys) + 1
        dek = new_data_key()
        new_key = vault.wrap(account, version, dek)
        keys = {k.dek_version: vault.unwrap(account, k) for k in record.keys} | {version: dek}
        new = FieldCipher(member_id=account, keys=keys, current=version)
        blobs = {n: new.encrypt(n, old.decrypt(n, b)) for n, b in record.fields.items()}
        command = WriteProfile(
            account,
            SYSTEM_CHANNEL,
            fields=tuple(sorted(blobs.items())),
            dek_version=version,
            new_kek_version=new_key.kek_version,
            new_wrapped=new_key.wrapped,
            replaces=tuple(sorted(stored_digests(record.fields).items())),
        )
        try:
            journal.append_blocking(command)
            return version
        except ProfileChangedError:
            if attempt == _ROTATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def commit_legacy_profiles(db: Database, journal: BlockingJournal, now_us: int) -> int:
    """Commit the fields of members stored before profile commitments
    existed (one ``profile`` entry each), then record the task done: from
    then on a member with fields and no commitment is refused on read.
    Returns how many were committed; safe to run in several servers."""
    if task_done(db, LEGACY_TASK):
        return 0
    committed = 0
    seen: set[str] = set()
    while True:
        accounts = [a for a in uncommitted_profiles(db, 500 + len(seen)) if a not in seen][:500]
        if not accounts:
            break
        seen.update(accounts)
        outcomes = journal.append_all_blocking(
            [WriteProfile(a, SYSTEM_CHANNEL, fields=()) for a in accounts]
        )
        committed += sum(1 for o in outcomes if not isinstance(o, LedgerError))
    mark_task_done(db, LEGACY_TASK, now_us)
    return committed


BACKFILL_TASK = "data-key-backfill"


def backfill_keys(db: Database, vault: MemberVault, now_us: int) -> int:
    """Give every open account without a data key its first one (accounts
    opened before data keys existed), so their new entries' details are
    sealed too. Done once per database: every account opened since has its
    key from the start, so later starts skip the scan. Idempotent; returns
    how many keys were added."""
    if task_done(db, BACKFILL_TASK):
        return 0
    added = 0
    for account in accounts_without_keys(db):
        if add_first_key(db, account, vault.wrap(account, 1, new_data_key()), now_us):
            added += 1
    mark_task_done(db, BACKFILL_TASK, now_us)
    return added


def check_keyring(db: Database, vault: MemberVault) -> None:
    """Refuse to serve with a keyring that does not open this database's
    data keys (e.g. a second server started with its own keyring instead of
    the shared one): every read and write of personal data would fail."""
    newest = newest_key(db)
    if newest is None:
        return
    account, key = newest
    try:
        vault.unwrap(account, key)
    except DecryptionError:
        raise KeysError(
            "keyring: does not open the data keys in this database; every server of "
            "one database must use the same keyring (--keyring / LOYALTY_LEDGER_KEYRING)"
        ) from None
