"""Voucher codes: what a member shows at a till (as text or a QR code).

    code = base32(seq (40 bits) | mac (60 bits)) | check        21 symbols
    mac  = HMAC-SHA256(secret, "loyalty-voucher-v1" 0x00 | seq u64 BE)[:60 bits]

Base32 is Crockford's alphabet (no I, L, O, U; read case-insensitively,
O as 0, I and L as 1); ``check`` is the Luhn mod 32 check symbol over the
20 before it, so a mistyped symbol or two swapped neighbours are caught
before any lookup (INVALID_ARGUMENT), while a well-formed code with a
wrong mac is just "no such voucher" (NOT_FOUND). The code names its
voucher (the issue entry's sequence) and proves it with 60 bits only the
ledger can compute: nothing secret is stored, so neither the database
nor the journal holds a redeemable code, and a replayed claim renders the
same code again. Shown as ``ABCD-EFGH-JKMN-PQRS-TVWX-Y``; the QR text is
``LV1:`` and the 21 symbols (QR alphanumeric mode). docs/program-rules.md §11.

The secret is the keyring's ``voucher-code`` secret, never a KEK.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)} | {"O": 0, "I": 1, "L": 1}
SECRET_NAME = "voucher-code"
QR_PREFIX = "LV1:"
MAX_SEQUENCE = 2**40 - 1
_LABEL = b"loyalty-voucher-v1\x00"
_SYMBOLS = 20  # 100 bits: 40 of sequence, 60 of mac


class CodeError(ValueError):
    """A code that is not well formed; the message names the rule, never the code."""


def _mac(secret: bytes, seq: int) -> int:
    digest = hmac.new(secret, _LABEL + struct.pack(">Q", seq), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 4  # 60 bits


def _check(values: list[int]) -> int:
    """Luhn mod 32: every second value from the right doubled, digits summed base 32."""
    total = 0
    for i, value in enumerate(reversed(values)):
        if i % 2 == 0:
            value *= 2
            value = value // 32 + value % 32
        total += value
    return (32 - total % 32) % 32


def make_code(secret: bytes, seq: int) -> str:
    """The 21 symbols of voucher ``seq``'s code."""
    if not 1 <= seq <= MAX_SEQUENCE:
        raise ValueError("voucher sequence out of range")
    value = (seq << 60) | _mac(secret, seq)
    values = [(value >> (5 * (_SYMBOLS - 1 - i))) & 31 for i in range(_SYMBOLS)]
    return "".join(ALPHABET[v] for v in [*values, _check(values)])


def display(code: str) -> str:
    """``ABCD-EFGH-JKMN-PQRS-TVWX-Y``: groups of four for reading aloud."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def qr_text(code: str) -> str:
    return QR_PREFIX + code


def parse(text: str) -> tuple[int, int]:
    """(sequence, mac) of a code as typed or scanned; CodeError if not well formed."""
    raw = text.strip().upper().removeprefix(QR_PREFIX)
    raw = raw.replace("-", "").replace(" ", "")
    if len(raw) != _SYMBOLS + 1:
        raise CodeError(f"code: must have {_SYMBOLS + 1} symbols (dashes and spaces aside)")
    try:
        values = [_VALUE[c] for c in raw]
    except KeyError:
        raise CodeError("code: only the symbols 0-9 and A-Z except U may appear") from None
    if _check(values[:-1]) != values[-1]:
        raise CodeError("code: check symbol does not match (mistyped?)")
    value = 0
    for v in values[:-1]:
        value = (value << 5) | v
    return value >> 60, value & ((1 << 60) - 1)


def sequence_of(secret: bytes, text: str) -> int | None:
    """The voucher a code names, or None when its mac is not the ledger's
    (a guessed code); CodeError when it is not well formed."""
    seq, mac = parse(text)
    if seq < 1 or not hmac.compare_digest(
        mac.to_bytes(8, "big"), _mac(secret, seq).to_bytes(8, "big")
    ):
        return None
    return seq
