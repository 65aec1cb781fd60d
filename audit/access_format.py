"""Canonical byte encoding of access-log records, version 1.

The access log is the second verifiable log beside the points journal:
one record per access decision (allowed or denied, reads included), hash
chained and in a Merkle tree exactly like journal entries. Records hold no
personal data: ids, role and method names, the decision and its reason,
the declared purpose, field *names*. docs/verification.md specifies the
format; tests/vectors pin it.

    record = "LLAR" version:u8 sequence:u64 time_us:i64 prev_hash:32B
             request_id:str principal:str role:str method:str decision:str
             reason:str purpose:str member_account_id:str fields:str
    str    = length:u16 UTF-8 bytes; integers big-endian
    hash   = SHA-256(record)

Pure; imports nothing from ledger/.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, fields

from audit.entry_format import HASH_SIZE, EncodingError

MAGIC = b"LLAR"
FORMAT_VERSION = 1
_HEAD = struct.Struct(">4sBQq")
TEXT_FIELDS = (
    "request_id",
    "principal",
    "role",
    "method",
    "decision",
    "reason",
    "purpose",
    "member_account_id",
    "fields",
)


@dataclass(frozen=True, slots=True)
class AccessRecord:
    sequence: int
    time_us: int
    prev_hash: bytes
    request_id: str
    principal: str
    role: str
    method: str
    decision: str  # allow | deny | start | end (break-glass events)
    reason: str
    purpose: str
    member_account_id: str
    fields: str  # comma-separated field names

    def encode(self) -> bytes:
        return encode_record(self)

    def compute_hash(self) -> bytes:
        return hashlib.sha256(encode_record(self)).digest()


def encode_record(record: AccessRecord) -> bytes:
    if len(record.prev_hash) != HASH_SIZE:
        raise EncodingError(
            f"prev_hash has wrong size: expected {HASH_SIZE}, got {len(record.prev_hash)}"
        )
    try:
        parts = [
            _HEAD.pack(MAGIC, FORMAT_VERSION, record.sequence, record.time_us),
            record.prev_hash,
        ]
    except struct.error as exc:
        raise EncodingError(f"integer out of range: {exc}") from None
    for name in TEXT_FIELDS:
        raw = str(getattr(record, name)).encode("utf-8")
        if len(raw) > 0xFFFF:
            raise EncodingError(f"{name}: longer than 65535 bytes")
        parts.append(struct.pack(">H", len(raw)) + raw)
    return b"".join(parts)


def decode_record(data: bytes) -> AccessRecord:
    """Parse a record; EncodingError for anything encode_record cannot produce."""
    if len(data) < _HEAD.size + HASH_SIZE:
        raise EncodingError("record: truncated")
    magic, version, sequence, time_us = _HEAD.unpack_from(data)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise EncodingError(f"record: expected {MAGIC!r} version {FORMAT_VERSION}")
    pos = _HEAD.size
    prev_hash = data[pos : pos + HASH_SIZE]
    pos += HASH_SIZE
    texts: list[str] = []
    for name in TEXT_FIELDS:
        if pos + 2 > len(data):
            raise EncodingError(f"record: truncated in {name}")
        (n,) = struct.unpack_from(">H", data, pos)
        if pos + 2 + n > len(data):
            raise EncodingError(f"record: truncated in {name}")
        try:
            texts.append(data[pos + 2 : pos + 2 + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise EncodingError(f"record: {name} is not UTF-8") from None
        pos += 2 + n
    if pos != len(data):
        raise EncodingError("record: trailing bytes")
    return AccessRecord(sequence, time_us, prev_hash, *texts)


assert tuple(f.name for f in fields(AccessRecord))[3:] == TEXT_FIELDS
