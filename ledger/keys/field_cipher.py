"""Per-member field encryption: AES-256-GCM with a versioned blob (a Fernet-style recipe).

Blob format v1 (``docs/field-encryption.md`` is the normative spec)::

    0x01 | dek_version u32 BE | nonce (12 bytes) | ciphertext || tag (16 bytes)

Associated data (authenticated, not stored)::

    b"loyalty-ledger/field/v1\\x00" + member_id UTF-8 + b"\\x00"
        + field UTF-8 + b"\\x00" + dek_version u32 BE

Invariants:

- A blob opens only for the member id and field name it was sealed for,
  under the DEK version named in its header; any other use, any altered
  byte (header included) and any truncation raise ``DecryptionError`` with
  its one fixed message.
- Every encryption draws a fresh random 96-bit nonce (``os.urandom``).
- Member ids and field names are non-empty and contain no NUL (the AAD
  separator); a breach raises ``ValueError`` (a programming error, never
  attacker input).
- Keys are never part of ``repr`` or of an error message.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.keys.errors import DecryptionError

FORMAT_V1 = 0x01
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
HEADER_SIZE = 1 + 4 + NONCE_SIZE
MIN_BLOB_SIZE = HEADER_SIZE + TAG_SIZE
MAX_KEY_VERSION = 0xFFFF_FFFF
AAD_PREFIX = b"loyalty-ledger/field/v1\x00"

_HEADER = struct.Struct(">BI")


def new_data_key() -> bytes:
    """A fresh random 256-bit data-encryption key (DEK)."""
    return os.urandom(KEY_SIZE)


def _check_name(what: str, value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: must be a non-empty string")
    if "\x00" in value:
        raise ValueError(f"{what}: must not contain NUL")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what}: must be encodable as UTF-8") from None


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError("dek version: must be an integer")
    if not 0 <= version <= MAX_KEY_VERSION:
        raise ValueError("dek version: must fit in an unsigned 32-bit integer")
    return version


class FieldCipher:
    """Encrypts and decrypts one member's fields under that member's DEKs.

    ``keys`` maps DEK version to a 32-byte DEK; ``current`` is the version
    new ciphertexts are sealed under. Older versions stay decryptable for as
    long as they are in ``keys``.
    """

    __slots__ = ("_aeads", "_current", "_member", "_member_id")

    def __init__(self, *, member_id: str, keys: Mapping[int, bytes], current: int) -> None:
        self._member = _check_name("member id", member_id)
        self._member_id = member_id
        aeads: dict[int, AESGCM] = {}
        for version, key in keys.items():
            _check_version(version)
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
                raise ValueError("dek: must be 32 bytes")
            aeads[version] = AESGCM(bytes(key))
        _check_version(current)
        if current not in aeads:
            raise ValueError("current: must be one of the given dek versions")
        self._aeads = aeads
        self._current = current

    def __repr__(self) -> str:
        return f"FieldCipher(versions={sorted(self._aeads)}, current={self._current})"

    @property
    def current(self) -> int:
        """The DEK version new ciphertexts are sealed under."""
        return self._current

    def _aad(self, field: bytes, version: int) -> bytes:
        return AAD_PREFIX + self._member + b"\x00" + field + b"\x00" + version.to_bytes(4, "big")

    # -- encryption ----------------------------------------------------------

    def encrypt(self, field: str, value: str) -> bytes:
        """Seal a text value of ``field``; returns a v1 blob."""
        if not isinstance(value, str):
            raise TypeError("value: must be str (use encrypt_bytes for bytes)")
        return self.encrypt_bytes(field, value.encode("utf-8"))

    def encrypt_bytes(self, field: str, data: bytes) -> bytes:
        """Seal raw bytes of ``field``; returns a v1 blob."""
        return self._encrypt_with_nonce(field, data, os.urandom(NONCE_SIZE))

    def _encrypt_with_nonce(self, field: str, data: bytes, nonce: bytes) -> bytes:
        """Seal with a caller-chosen nonce: for test vectors only, never reuse a nonce."""
        field_b = _check_name("field", field)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data: must be bytes")
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce: must be 12 bytes")
        version = self._current
        sealed = self._aeads[version].encrypt(nonce, bytes(data), self._aad(field_b, version))
        return _HEADER.pack(FORMAT_V1, version) + bytes(nonce) + sealed

    # -- decryption ----------------------------------------------------------

    def decrypt(self, field: str, blob: bytes) -> str:
        """Open a text value of ``field``; ``DecryptionError`` on any failure."""
        data = self.decrypt_bytes(field, blob)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError() from None

    def decrypt_bytes(self, field: str, blob: bytes) -> bytes:
        """Open raw bytes of ``field``; ``DecryptionError`` on any failure."""
        field_b = _check_name("field", field)
        version = self.key_version(blob)
        aead = self._aeads.get(version)
        if aead is None:
            raise DecryptionError()
        raw = bytes(blob)
        nonce = raw[5:HEADER_SIZE]
        try:
            return aead.decrypt(nonce, raw[HEADER_SIZE:], self._aad(field_b, version))
        except InvalidTag:
            raise DecryptionError() from None

    @staticmethod
    def key_version(blob: bytes) -> int:
        """The DEK version in a blob's header; ``DecryptionError`` if malformed.

        The header is not authenticated until the blob is decrypted: use the
        result only to pick which DEK to load.
        """
        if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < MIN_BLOB_SIZE:
            raise DecryptionError()
        fmt, version = _HEADER.unpack_from(blob, 0)
        if fmt != FORMAT_V1:
            raise DecryptionError()
        return int(version)
