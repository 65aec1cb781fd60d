"""What a caller asks the journal to do, after validation, and what it gets.

Pure data: built by the gRPC layer from a validated request, consumed by the
appender. ``render`` turns an outcome into the serialized response, so the
appender can store the exact response bytes with the idempotency key and a
replay returns them byte for byte.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from audit.accounts import shortfall_account
from audit.entry_format import (
    KIND_EARN,
    KIND_ERASE,
    KIND_REDEEM,
    KIND_REVERSE,
    PROGRAM_FORFEITED,
    PROGRAM_ISSUED,
    PROGRAM_REDEEMED,
    JournalEntry,
)
from ledger.keys.field_cipher import FieldCipher
from ledger.program.lots import BalanceView
from ledger.program.vouchers import VoucherState

PROGRAM_ACCOUNTS = (PROGRAM_ISSUED, PROGRAM_REDEEMED, PROGRAM_FORFEITED)
__all__ = [
    "KIND_EARN",
    "KIND_ERASE",
    "KIND_REDEEM",
    "KIND_REVERSE",
    "PROGRAM_FORFEITED",
    "PROGRAM_ISSUED",
    "PROGRAM_REDEEMED",
]

DETAILS_CLEAR_V1 = 0x01
DETAILS_SEALED_V1 = 0x02  # 0x02 | FieldCipher blob of the 0x01 encoding
DETAILS_FIELD = "entry_details"  # the field name bound into the ciphertext


def new_member_account_id() -> str:
    """A random account id: 'mbr_' + 128 random bits in lower-case base32."""
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii")
    return "mbr_" + raw.rstrip("=").lower()


@dataclass(frozen=True, slots=True)
class EntryDetails:
    """Business details of an entry, carried in the entry's ``details`` bytes.

    Encoded as described in docs/journal-format.md ("details"). Format 0x01
    is clear text; the journal stores format 0x02, the 0x01 bytes encrypted
    under the member's data key (``seal``/``open_sealed``).
    """

    store_id: str = ""
    external_transaction_id: str = ""
    purchase_minor_units: int = 0
    purchase_currency: str = ""  # empty: no purchase

    def is_empty(self) -> bool:
        return self == EntryDetails()

    def encode(self) -> bytes:
        if self.is_empty():
            return b""
        out = [bytes([DETAILS_CLEAR_V1])]
        for text in (self.store_id, self.external_transaction_id, self.purchase_currency):
            raw = text.encode("utf-8")
            out.append(struct.pack(">H", len(raw)) + raw)
        out.append(struct.pack(">q", self.purchase_minor_units))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> EntryDetails:
        """Parse details bytes; ValueError for anything not written by encode()."""
        if not data:
            return cls()
        if data[0] != DETAILS_CLEAR_V1:
            raise ValueError(f"details: format byte {data[0]:#04x} is not clear text")
        try:
            pos = 1
            texts = []
            for _ in range(3):
                (n,) = struct.unpack_from(">H", data, pos)
                if pos + 2 + n > len(data):
                    raise ValueError("details: truncated")
                texts.append(data[pos + 2 : pos + 2 + n].decode("utf-8"))
                pos += 2 + n
            (minor,) = struct.unpack_from(">q", data, pos)
        except (struct.error, UnicodeDecodeError):
            raise ValueError("details: malformed") from None
        if pos + 8 != len(data):
            raise ValueError("details: trailing bytes")
        details = cls(texts[0], texts[1], minor, texts[2])
        if details.is_empty():
            raise ValueError("details: empty details must be encoded as no bytes")
        return details


def seal_details(cipher: FieldCipher, details: EntryDetails) -> bytes:
    """Format 0x02: the clear encoding, encrypted under the member's key and
    bound to the member and the field name ``entry_details``."""
    if details.is_empty():
        return b""
    return bytes([DETAILS_SEALED_V1]) + cipher.encrypt_bytes(DETAILS_FIELD, details.encode())


def is_sealed(data: bytes) -> bool:
    return bool(data) and data[0] == DETAILS_SEALED_V1


def open_details(cipher: FieldCipher, data: bytes) -> EntryDetails:
    """Details of either format; DecryptionError if sealed ones do not open."""
    if not is_sealed(data):
        return EntryDetails.decode(data)
    return EntryDetails.decode(cipher.decrypt_bytes(DETAILS_FIELD, data[1:]))


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Identity of a mutating request for idempotency.

    ``fingerprint`` is SHA-256 over the RPC name and the deterministic
    serialization of the whole request; the same key with another
    fingerprint is a conflict.
    """

    channel_id: str
    idempotency_key: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class AccountOpened:
    account_id: str


@dataclass(frozen=True, slots=True)
class Appended:
    entry: JournalEntry
    hash: bytes
    member_account: str
    balance: BalanceView  # the member's balance after the entry
    hold_expires_us: int = 0  # Hold: when it releases itself
    partner_units: int = 0  # exchange out: units the partner credits
    rules: tuple[tuple[str, int], ...] = ()  # computed earn: (rule id, points)


@dataclass(frozen=True, slots=True)
class MemberErased:
    account_id: str
    forfeited: int  # points moved to program:forfeited
    sequence: int  # the erase entry, 0 when the balance was already zero


@dataclass(frozen=True, slots=True)
class Referred:
    referrer: str
    referred: str
    referrals: int  # the referrer's rewarded referrals so far


@dataclass(frozen=True, slots=True)
class ShortfallSettled:
    store_account: str  # shortfall:<store>
    points: int
    owed: int  # what the store still owes after this settlement
    sequence: int  # the settlement entry


@dataclass(frozen=True, slots=True)
class VoucherChanged:
    """A voucher issued, redeemed or cancelled: the entry and the voucher."""

    entry: JournalEntry
    hash: bytes
    voucher: VoucherState
    state: str  # ledger/program/vouchers.py
    balance: BalanceView | None  # the member's balance after, when it changed


Outcome = AccountOpened | Appended | MemberErased | Referred | ShortfallSettled | VoucherChanged
Renderer = Callable[[Outcome], bytes]


@dataclass(frozen=True, slots=True)
class _MemberPoints:
    """Moves ``points`` to or from one member account."""

    meta: RequestMeta
    account: str
    points: int
    details: EntryDetails
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Earn(_MemberPoints):
    """Credit the member: a new lot, pending for the purchase's return
    window. ``points`` 0 with a purchase: the program's earn rules compute
    them (docs/program-rules.md)."""

    categories: tuple[str, ...] = ()
    occurred_us: int = 0  # offline replay: when the purchase happened; 0: now


@dataclass(frozen=True, slots=True)
class Redeem(_MemberPoints):
    """Debit the member's available lots, soonest expiry first; never overdraws.
    ``offline``: replayed from a store's outage queue, where the goods were
    handed over already: what the member's points do not cover is taken
    from the store's shortfall account (a shortfall entry) instead of
    refusing (docs/outage.md)."""

    offline: bool = False

    @property
    def shortfall_account(self) -> str:
        """Where what the member's points do not cover comes from (offline)."""
        return shortfall_account(self.details.store_id or self.meta.channel_id)


@dataclass(frozen=True, slots=True)
class Hold(_MemberPoints):
    """Set points aside (lots -> held) until captured, released or timed out."""

    minutes: int = 0  # 0: the program's default timeout


@dataclass(frozen=True, slots=True)
class Capture:
    """Redeem ``points`` of an open hold (None: all of it); the rest goes
    back to its lots. Any channel may capture (omni-channel)."""

    meta: RequestMeta
    account: str  # the hold's member
    hold_sequence: int
    points: int | None
    details: EntryDetails
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Release:
    """Void an open hold: its points go back to their lots."""

    meta: RequestMeta
    account: str  # the hold's member
    hold_sequence: int
    details: EntryDetails
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Transfer(_MemberPoints):
    """Member to member (family pooling): the receiver gets a new lot that
    expires when the soonest of the lots it came from would have."""

    to_account: str = ""


@dataclass(frozen=True, slots=True)
class Exchange(_MemberPoints):
    """To or from a partner program through its clearing account.
    Direction "out": ``points`` leave the member. Direction "in": ``units``
    partner units arrive and become points at the partner's rate."""

    partner: str = ""
    direction: str = "out"  # "out" | "in"
    units: int = 0


@dataclass(frozen=True, slots=True)
class Refer:
    """Register that ``account`` referred ``referred`` (a new member). The
    referrer is rewarded when the referred member's first purchase clears
    its return window. Device ids arrive as keyed tokens, never in clear."""

    meta: RequestMeta
    account: str  # the referrer
    referred: str
    device_token: bytes  # of the referred member's device (b"": not sent)
    referrer_device_token: bytes
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Settle:
    """Post what time has made due for a member (hold timeouts, matured and
    expired lots). Sent by the sweeper; every batch settles the members it
    touches anyway, so this is idempotent and needs no key."""

    account: str


@dataclass(frozen=True, slots=True)
class Reverse:
    meta: RequestMeta
    account: str  # the member whose entry it is: a reversal must name them
    original_sequence: int
    points: int | None  # None: everything not yet reversed
    details: EntryDetails
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SealedMember:
    """A new member's personal data, encrypted before it reaches the
    appender (ledger/members/vault.py): the wrapped data key, one
    ciphertext per field, and the blind-index tokens for lookups."""

    dek_version: int
    kek_version: int
    wrapped_dek: bytes
    fields: tuple[tuple[str, bytes], ...]
    lookups: tuple[tuple[str, bytes], ...]  # (kind, token)


@dataclass(frozen=True, slots=True)
class Enroll:
    """Open ``account`` (chosen by the caller, since the ciphertexts are
    bound to it) and store the member's sealed profile with it. OpenAccount
    is an Enroll without fields: every account gets a data key, under which
    its entries' details are encrypted."""

    meta: RequestMeta
    account: str
    sealed: SealedMember
    render: Renderer = field(repr=False, compare=False)
    # on a replay: does the account the first request made hold this
    # request's values? (the fingerprint leaves personal values out)
    same_member: Callable[[bytes], bool] | None = field(default=None, repr=False, compare=False)
    # before opening: the field (phone/email) another member already holds, if any
    taken: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Erase:
    """Crypto-shred a member: forfeit the balance, destroy the data key,
    drop lookups and fields, close the account."""

    meta: RequestMeta
    account: str
    reason: str  # member_request | retention_expired | legal_order
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WriteProfile:
    """Change a member's stored fields and commit the result to the journal
    (a ``profile`` entry, audit/profile_format.py), in one transaction.
    Sealed before it reaches the appender, like Enroll: an update
    (UpdateMember) replaces ``fields`` and deletes ``cleared``; a data-key
    rotation (``new_wrapped`` set) re-encrypts every field under data key
    version ``dek_version`` and stores that key. Refused (nothing written)
    when the member's fields no longer match their newest commitment, or
    changed since they were sealed (the caller retries)."""

    account: str
    channel_id: str
    fields: tuple[tuple[str, bytes], ...]  # (name, ciphertext under dek_version)
    cleared: tuple[str, ...] = ()
    lookup_kinds: tuple[str, ...] = ()  # kinds whose blind-index tokens are replaced
    lookups: tuple[tuple[str, bytes], ...] = ()  # (kind, token)
    dek_version: int = 1  # update: the member's newest key; rotation: the new one
    new_kek_version: int = 0  # rotation: the new data key, wrapped
    new_wrapped: bytes = b""
    # rotation: the digests of the ciphertexts it re-encrypted, which must
    # still be the stored ones (an update in between would be lost)
    replaces: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class ProfileWritten:
    account_id: str
    sequence: int  # the profile entry


@dataclass(frozen=True, slots=True)
class SettleShortfall:
    """Record that a store paid for ``points`` of its outage shortfall
    (program:settled -> shortfall:<store>; never more than it owes)."""

    meta: RequestMeta  # channel SETTLEMENT_CHANNEL, the settlement's reference as key
    store_account: str
    points: int
    render: Renderer = field(repr=False, compare=False)


SETTLEMENT_CHANNEL = "settlement"  # reserved: no caller's channel (ledger/validation.py)


@dataclass(frozen=True, slots=True)
class ClaimReward:
    """Buy a reward of the catalogue with the member's points: a voucher
    (lots -> voucher:<reward>), if the reward is offered, in stock and
    claimable through the caller's channel."""

    meta: RequestMeta
    account: str
    reward_id: str
    details: EntryDetails
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RedeemVoucher:
    """Honour a voucher at a till (any channel the reward allows): once."""

    meta: RequestMeta
    voucher: int  # its issue entry's sequence, from the code
    render: Renderer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CancelVoucher:
    """Give an open voucher's points back to the lots they came from."""

    meta: RequestMeta
    account: str  # the voucher's member: a cancel must name them
    voucher: int
    render: Renderer = field(repr=False, compare=False)


Command = (
    WriteProfile
    | SettleShortfall
    | Earn
    | Redeem
    | Reverse
    | Enroll
    | Erase
    | Hold
    | Capture
    | Release
    | Transfer
    | Exchange
    | Refer
    | Settle
    | ClaimReward
    | RedeemVoucher
    | CancelVoucher
)
