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
append-only); erasure destroys all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ledger.keys.errors import DecryptionError, KeysError
from ledger.keys.field_cipher import FieldCipher, new_data_key
from ledger.members.vault import MemberVault, StoredKey
from ledger.storage.database import Database
from ledger.storage.members import (
    MemberRecord,
    MemberStore,
    accounts_without_keys,
    add_first_key,
    mark_task_done,
    newest_key,
    task_done,
)

BATCH = 500


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


def rotate_member_key(store: MemberStore, vault: MemberVault, account: str, now_us: int) -> int:
    """Re-encrypt one member's fields under a new DEK version; returns it."""

    def reseal(record: MemberRecord) -> tuple[StoredKey, dict[str, bytes]]:
        old = vault.cipher(account, record.keys)
        version = max(k.dek_version for k in record.keys) + 1
        dek = new_data_key()
        new_key = vault.wrap(account, version, dek)
        keys = {k.dek_version: vault.unwrap(account, k) for k in record.keys} | {version: dek}
        new = FieldCipher(member_id=account, keys=keys, current=version)
        return new_key, {n: new.encrypt(n, old.decrypt(n, b)) for n, b in record.fields.items()}

    return store.rotate_member_key(account, reseal, now_us)


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
