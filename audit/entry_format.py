"""Canonical byte encoding of journal entries, versions 1 and 2.

This module is the executable form of docs/journal-format.md; the two must
agree, and tests/vectors/journal-entry-v1.json and -v2.json pin them
together.

    entry    = "LLJE" version:u8 sequence:u64 time_us:i64 prev_hash:32B
               kind:str channel_id:str reverses:u64
               count:u32 (from:str to:str points:i64){count}
               details:bytes
               [request:16B]                      version 2 only
    str      = length:u16 UTF-8 bytes
    bytes    = length:u32 raw bytes
    integers are big-endian; hash = SHA-256(entry)

Version 2 is version 1 plus ``request``: the keyed digest of the channel
and idempotency key of the request that made the entry (the ledger's
``IdempotencyDigest``), so a request credited twice is visible in the
journal itself. Entries the ledger makes by itself (no request) are
version 1; an entry is version 2 exactly when it has a request.

It is pure (no I/O) and imports nothing from ledger/, so an offline verifier
can use it alone.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

MAGIC = b"LLJE"
FORMAT_VERSION = 1
FORMAT_VERSION_REQUEST = 2  # version 1 plus the request digest
REQUEST_SIZE = 16
HASH_SIZE = 32
GENESIS_PREV_HASH = bytes(HASH_SIZE)
MEMBER_ACCOUNT_PREFIX = "mbr_"
PROGRAM_ISSUED = "program:issued"
PROGRAM_REDEEMED = "program:redeemed"
PROGRAM_FORFEITED = "program:forfeited"  # balances of erased members
KIND_EARN = "earn"
KIND_REDEEM = "redeem"
KIND_REVERSE = "reverse"
KIND_ERASE = "erase"  # an erased member's balance, forfeited

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF


class EncodingError(ValueError):
    """An entry cannot be encoded: a field is out of the format's range."""


@dataclass(frozen=True, slots=True)
class Posting:
    """Moves ``points`` (> 0) from ``from_account`` to ``to_account``."""

    from_account: str
    to_account: str
    points: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    sequence: int
    time_us: int
    prev_hash: bytes
    kind: str
    channel_id: str
    reverses: int  # 0 when the entry is not a reversal
    postings: tuple[Posting, ...]
    details: bytes = b""
    request: bytes = b""  # the request's keyed digest (16 bytes); b"": none (version 1)

    def encode(self) -> bytes:
        return encode_entry(self)

    def compute_hash(self) -> bytes:
        return hashlib.sha256(encode_entry(self)).digest()

    def member_account(self) -> str:
        """The member (owner of the first member account a posting names,
        "" for none) whose key seals the entry's details."""
        for posting in self.postings:
            for account in (posting.from_account, posting.to_account):
                if is_member_account(account):
                    return account.split("/", 1)[0]
        return ""


def _str(value: str, field: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodingError(f"{field}: not encodable as UTF-8") from None
    if len(raw) > _U16_MAX:
        raise EncodingError(f"{field}: longer than {_U16_MAX} bytes")
    return struct.pack(">H", len(raw)) + raw


def encode_entry(entry: JournalEntry) -> bytes:
    if len(entry.prev_hash) != HASH_SIZE:
        raise EncodingError(
            f"prev_hash has wrong size: expected {HASH_SIZE}, got {len(entry.prev_hash)}"
        )
    if len(entry.details) > _U32_MAX:
        raise EncodingError("details: longer than 2^32-1 bytes")
    if entry.request and len(entry.request) != REQUEST_SIZE:
        raise EncodingError(f"request: must be empty or {REQUEST_SIZE} bytes")
    version = FORMAT_VERSION_REQUEST if entry.request else FORMAT_VERSION
    try:
        parts = [
            MAGIC,
            struct.pack(">BQq", version, entry.sequence, entry.time_us),
            entry.prev_hash,
            _str(entry.kind, "kind"),
            _str(entry.channel_id, "channel_id"),
            struct.pack(">QI", entry.reverses, len(entry.postings)),
        ]
        for posting in entry.postings:
            parts.append(_str(posting.from_account, "from_account"))
            parts.append(_str(posting.to_account, "to_account"))
            parts.append(struct.pack(">q", posting.points))
        parts.append(struct.pack(">I", len(entry.details)))
        parts.append(entry.details)
        parts.append(entry.request)
    except struct.error as exc:
        raise EncodingError(f"integer out of range: {exc}") from None
    return b"".join(parts)


def is_member_account(account_id: str) -> bool:
    return account_id.startswith(MEMBER_ACCOUNT_PREFIX)


def decode_entry(data: bytes) -> JournalEntry:
    """Parse canonical entry bytes (the inverse of ``encode_entry``);
    EncodingError for anything ``encode_entry`` cannot produce."""
    head = struct.Struct(">4sBQq")
    if len(data) < head.size + HASH_SIZE:
        raise EncodingError("entry: truncated")
    magic, version, sequence, time_us = head.unpack_from(data)
    if magic != MAGIC or version not in (FORMAT_VERSION, FORMAT_VERSION_REQUEST):
        raise EncodingError(
            f"entry: expected {MAGIC!r} version {FORMAT_VERSION} or {FORMAT_VERSION_REQUEST}"
        )
    reader = _Reader(data, head.size)
    prev_hash = reader.raw(HASH_SIZE)
    kind, channel_id = reader.text("kind"), reader.text("channel_id")
    reverses, count = reader.unpack(">QI")
    postings = []
    for _ in range(count):
        source, target = reader.text("from_account"), reader.text("to_account")
        (points,) = reader.unpack(">q")
        postings.append(Posting(source, target, points))
    (size,) = reader.unpack(">I")
    details = reader.raw(size)
    request = reader.raw(REQUEST_SIZE) if version == FORMAT_VERSION_REQUEST else b""
    if reader.pos != len(data):
        raise EncodingError("entry: trailing bytes")
    return JournalEntry(
        sequence, time_us, prev_hash, kind, channel_id, reverses, tuple(postings), details, request
    )


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EncodingError("entry: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return tuple(struct.unpack(fmt, self.raw(struct.calcsize(fmt))))

    def text(self, name: str) -> str:
        (n,) = self.unpack(">H")
        try:
            return self.raw(n).decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError(f"entry: {name} is not UTF-8") from None
