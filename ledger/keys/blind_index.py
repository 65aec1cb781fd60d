"""Blind index: keyed, truncated lookup tokens for "find member by phone / e-mail".

``token = HMAC-SHA256(key, kind UTF-8 | 0x00 | normalized UTF-8)[:size]``

Invariants:

- Tokens are computed over the normalized form only; the same person's
  number or address written differently gives the same token.
- Tokens are truncated (4 bytes = 32 bits by default) on purpose: at scale
  several members share a token, so a leaked index alone does not pin one
  person. A lookup therefore returns candidates; the caller MUST decrypt each
  candidate's field and compare it with the normalized query.
- Normalization errors are ``ValueError`` with a fixed message that names
  the field and never contains the value.
- The key is a keyring secret (``Keyring.secret("blind-index")``), never a
  KEK or DEK, and never part of ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

import phonenumbers

PHONE = "phone"
EMAIL = "email"
DEFAULT_SIZE = 4
MIN_KEY_SIZE = 32
MAX_EMAIL_LENGTH = 254
KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")

_BAD_PHONE = "phone: not a valid phone number"
_BAD_EMAIL = "email: not a valid e-mail address"


def normalize_phone(value: str, default_region: str = "CN") -> str:
    """The E.164 form (``+8613800000000``) of a valid phone number.

    Numbers without a leading ``+`` are read as national numbers of
    ``default_region`` (ISO 3166-1 alpha-2). Extensions are dropped.
    """
    if not isinstance(value, str):
        raise ValueError(_BAD_PHONE)
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        raise ValueError(_BAD_PHONE) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_BAD_PHONE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    """The normalized form of an e-mail address (rules in docs/field-encryption.md).

    The whole address is lower-cased, local part included. RFC 5321 allows a
    case-sensitive local part, but most providers treat it case-insensitively
    and people type it both ways; a rare false match between two addresses
    that differ only in case is removed by decrypt-and-compare upstream.
    Provider-specific rules (dots or ``+tag`` in Gmail addresses) are not
    applied: they would merge distinct addresses at other providers.
    """
    if not isinstance(value, str):
        raise ValueError(_BAD_EMAIL)
    address = value.strip()
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in address):
        raise ValueError(_BAD_EMAIL)
    if address.count("@") != 1:
        raise ValueError(_BAD_EMAIL)
    local, domain = address.lower().split("@")
    labels = domain.split(".")
    if not local or len(labels) < 2 or not all(labels):
        raise ValueError(_BAD_EMAIL)
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(_BAD_EMAIL) from None
    normalized = f"{local}@{domain}"
    if len(normalized) > MAX_EMAIL_LENGTH:
        raise ValueError(_BAD_EMAIL)
    return normalized


class BlindIndex:
    """Computes blind-index tokens under one secret key."""

    __slots__ = ("_key", "_size")

    def __init__(self, key: bytes, *, size: int = DEFAULT_SIZE) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_SIZE:
            raise ValueError("blind index key: must be at least 32 bytes")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 32:
            raise ValueError("blind index size: must be from 1 to 32 bytes")
        self._key = bytes(key)
        self._size = size

    def __repr__(self) -> str:
        return f"BlindIndex(size={self._size})"

    @property
    def size(self) -> int:
        return self._size

    def token(self, kind: str, normalized: str) -> bytes:
        """HMAC-SHA256(key, kind | 0x00 | normalized) truncated to ``size`` bytes.

        ``normalized`` must already be normalized (see ``normalize_phone`` and
        ``normalize_email``); this method does not normalize.
        """
        if not isinstance(kind, str) or not KIND.fullmatch(kind):
            raise ValueError("blind index kind: must match [a-z][a-z0-9-]{0,31}")
        if not isinstance(normalized, str):
            raise TypeError("normalized: must be str")
        message = kind.encode("utf-8") + b"\x00" + normalized.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()[: self._size]

    def phone(self, value: str, region: str = "CN") -> bytes:
        """The token of a phone number (normalized to E.164 first)."""
        return self.token(PHONE, normalize_phone(value, region))

    def email(self, value: str) -> bytes:
        """The token of an e-mail address (normalized first)."""
        return self.token(EMAIL, normalize_email(value))
