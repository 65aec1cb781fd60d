"""Profile commitments: which ciphertext each personal field of a member holds.

A member's personal fields are stored encrypted beside the journal
(docs/field-encryption.md). Encryption binds a ciphertext to its member,
field and data-key version, but not to *which* value is current: an older
ciphertext put back by someone with database access would still decrypt.
So every write of a member's fields (enrollment, update, data-key
rotation) appends a ``profile`` entry to the journal whose details commit
to the SHA-256 of every field ciphertext the member holds after the write.
The ledger checks the stored fields against the newest commitment before
it decrypts them; a field put back, edited, added or removed outside the
ledger no longer matches (docs/journal-format.md §6.5).

Details format 0x03 (a ``profile`` entry has no postings):

    details  = 03 account:str count:u16 (field:str digest:32B){count}
    str      = length:u16 UTF-8 bytes
    digest   = SHA-256(the field's ciphertext blob, as stored)

fields in ascending byte order of their names, each once; count 0 means
the member holds no field. The digests reveal nothing of the values
(each ciphertext has a random nonce), and stay valid after erasure.

Pure (no I/O) and imports nothing from ledger/: the offline verifier
(audit/chain.py) and the ledger both use it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

KIND_PROFILE: Final = "profile"
FORMAT_PROFILE: Final = 0x03
DIGEST_SIZE: Final = 32
MAX_FIELDS: Final = 0xFFFF
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class ProfileFormatError(ValueError):
    """Details bytes that are not a valid profile commitment."""


def field_digest(ciphertext: bytes) -> bytes:
    return hashlib.sha256(ciphertext).digest()


@dataclass(frozen=True, slots=True)
class ProfileCommitment:
    account: str  # the member account id (mbr_...)
    fields: tuple[tuple[str, bytes], ...]  # (field name, digest), ascending names

    @classmethod
    def of(cls, account: str, ciphertexts: Mapping[str, bytes]) -> ProfileCommitment:
        """The commitment to a member's fields as stored (name -> ciphertext)."""
        return cls(account, tuple((n, field_digest(ciphertexts[n])) for n in sorted(ciphertexts)))

    @property
    def digests(self) -> dict[str, bytes]:
        return dict(self.fields)

    def encode(self) -> bytes:
        names = [n for n, _ in self.fields]
        if names != sorted(set(names)):
            raise ProfileFormatError("fields: must be in ascending order, each once")
        if len(names) > MAX_FIELDS:
            raise ProfileFormatError(f"fields: more than {MAX_FIELDS}")
        parts = [bytes([FORMAT_PROFILE]), _str(self.account), struct.pack(">H", len(names))]
        for name, digest in self.fields:
            if not FIELD_NAME.fullmatch(name):
                raise ProfileFormatError("field: a name must match [a-z][a-z0-9_]{0,31}")
            if len(digest) != DIGEST_SIZE:
                raise ProfileFormatError(f"field {name}: digest must be {DIGEST_SIZE} bytes")
            parts += [_str(name), digest]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> ProfileCommitment:
        """The inverse of ``encode``; ProfileFormatError for anything it
        cannot produce (wrong format byte, bad names or order, truncation,
        trailing bytes)."""
        if not data or data[0] != FORMAT_PROFILE:
            raise ProfileFormatError("details: a profile entry's details start with 0x03")
        pos = 1
        account, pos = _read_str(data, pos)
        if pos + 2 > len(data):
            raise ProfileFormatError("details: truncated")
        (count,) = struct.unpack_from(">H", data, pos)
        pos += 2
        fields = []
        for _ in range(count):
            name, pos = _read_str(data, pos)
            if not FIELD_NAME.fullmatch(name):
                raise ProfileFormatError("details: a field name must match [a-z][a-z0-9_]{0,31}")
            if pos + DIGEST_SIZE > len(data):
                raise ProfileFormatError("details: truncated")
            fields.append((name, data[pos : pos + DIGEST_SIZE]))
            pos += DIGEST_SIZE
        if pos != len(data):
            raise ProfileFormatError("details: trailing bytes")
        names = [n for n, _ in fields]
        if names != sorted(set(names)):
            raise ProfileFormatError("details: fields must be in ascending order, each once")
        return cls(account, tuple(fields))


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ProfileFormatError("string: longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


def _read_str(data: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(data):
        raise ProfileFormatError("details: truncated")
    (n,) = struct.unpack_from(">H", data, pos)
    pos += 2
    if pos + n > len(data):
        raise ProfileFormatError("details: truncated")
    try:
        return data[pos : pos + n].decode("utf-8"), pos + n
    except UnicodeDecodeError:
        raise ProfileFormatError("details: a string is not UTF-8") from None
