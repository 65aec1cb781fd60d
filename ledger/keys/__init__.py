"""Field-level encryption of members' personal data (pure, no database, no gRPC).

- ``field_cipher``: ``FieldCipher`` seals one member's fields with AES-256-GCM
  under that member's data keys (DEKs), bound to member id and field name.
- ``keyring``: envelope encryption of DEKs under key-encryption keys (KEKs);
  ``Keyring`` is the interface, ``FileKeyring`` a 0600 JSON file.
- ``blind_index``: normalization of phone numbers and e-mail addresses and
  truncated HMAC tokens to find members by them.
- ``errors``: ``DecryptionError`` has one fixed message for every failure.

The formats are specified in ``docs/field-encryption.md`` and pinned by
``tests/vectors/field-cipher-v1.json``.
"""

from __future__ import annotations

from ledger.keys.blind_index import BlindIndex, normalize_email, normalize_phone
from ledger.keys.errors import DecryptionError, KeyringError, KeysError
from ledger.keys.field_cipher import FieldCipher, new_data_key
from ledger.keys.keyring import FileKeyring, Keyring, WrappedKey, dek_context

__all__ = [
    "BlindIndex",
    "DecryptionError",
    "FieldCipher",
    "FileKeyring",
    "Keyring",
    "KeyringError",
    "KeysError",
    "WrappedKey",
    "dek_context",
    "new_data_key",
    "normalize_email",
    "normalize_phone",
]
