"""Sealing and opening members' personal data (envelope encryption).

Each member has data keys (DEKs, versioned); each DEK is stored wrapped by
the keyring's current key-encryption key (KEK). Every personal field is one
AES-256-GCM ciphertext under the member's current DEK, bound to the member
and the field (docs/field-encryption.md). Phone and e-mail also get a
blind-index token so a till can find a member without the database ever
holding the number in clear.

Invariants:
- plaintext personal values exist only in memory, for the length of a call;
- a DEK is only ever stored wrapped, bound to (member, DEK version);
- erasing a member deletes every wrapped DEK of theirs: nothing they wrote
  (fields, encrypted journal details) can be decrypted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.commands import SealedMember
from ledger.keys.blind_index import EMAIL, PHONE, BlindIndex
from ledger.keys.errors import DecryptionError
from ledger.keys.field_cipher import FieldCipher, new_data_key
from ledger.keys.keyring import Keyring, WrappedKey, dek_context

LOOKUP_KINDS = (PHONE, EMAIL)
BLIND_INDEX_SECRET = "blind-index"


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One wrapped DEK row of a member."""

    dek_version: int
    kek_version: int
    wrapped: bytes


class MemberVault:
    def __init__(self, *, keyring: Keyring, index: BlindIndex) -> None:
        self.keyring = keyring
        self.index = index

    @classmethod
    def for_keyring(cls, keyring: Keyring) -> MemberVault:
        return cls(keyring=keyring, index=BlindIndex(keyring.secret(BLIND_INDEX_SECRET)))

    def wrap(self, account: str, dek_version: int, dek: bytes) -> StoredKey:
        wrapped = self.keyring.wrap(dek, context=dek_context(account, dek_version))
        return StoredKey(dek_version, wrapped.kek_version, wrapped.blob)

    def seal_new(self, account: str, values: Mapping[str, str]) -> SealedMember:
        """A new member's first DEK (version 1), fields and lookup tokens."""
        dek = new_data_key()
        key = self.wrap(account, 1, dek)
        cipher = FieldCipher(member_id=account, keys={1: dek}, current=1)
        return SealedMember(
            dek_version=1,
            kek_version=key.kek_version,
            wrapped_dek=key.wrapped,
            fields=tuple(
                (name, cipher.encrypt(name, value)) for name, value in sorted(values.items())
            ),
            lookups=self.lookups(values),
        )

    def lookups(self, values: Mapping[str, str]) -> tuple[tuple[str, bytes], ...]:
        """Blind-index tokens for the (normalized) phone and e-mail in ``values``."""
        return tuple(
            (kind, self.index.token(kind, values[kind]))
            for kind in LOOKUP_KINDS
            if values.get(kind)
        )

    def token(self, kind: str, normalized: str) -> bytes:
        return self.index.token(kind, normalized)

    def unwrap(self, account: str, key: StoredKey) -> bytes:
        return self.keyring.unwrap(
            WrappedKey(key.kek_version, key.wrapped), context=dek_context(account, key.dek_version)
        )

    def cipher(self, account: str, keys: Iterable[StoredKey]) -> FieldCipher:
        """A cipher holding every DEK of the member; encrypts under the newest.
        DecryptionError when a wrapped key does not open."""
        deks = {k.dek_version: self.unwrap(account, k) for k in keys}
        return FieldCipher(member_id=account, keys=deks, current=max(deks))

    def open(
        self,
        account: str,
        keys: Iterable[StoredKey],
        fields: Mapping[str, bytes],
        wanted: frozenset[str] | None = None,
    ) -> dict[str, str | None]:
        """Plaintext of the ``wanted`` fields (None: all); the others are
        present with the value None, never decrypted.

        A profile field is always under the member's current data key (DEK
        rotation re-encrypts every field), so a field under an older version
        is an old ciphertext put back: refused like any failed decryption,
        though the old key still exists (for journal details)."""
        cipher = self.cipher(account, keys)
        out: dict[str, str | None] = {}
        for name, blob in fields.items():
            if wanted is not None and name not in wanted:
                out[name] = None
                continue
            if FieldCipher.key_version(blob) != cipher.current:
                raise DecryptionError()
            out[name] = cipher.decrypt(name, blob)
        return out
