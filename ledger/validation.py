"""Field rules for requests: pure functions that raise ``ValidationError``.

Each rule is stated in the error message the caller sees, so a channel
engineer can fix the request without reading this file. Values are never
echoed back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import pycountry

from ledger.errors import ValidationError

CHANNEL_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{8,128}")
MEMBER_ACCOUNT_RE = re.compile(r"mbr_[a-z2-7]{26}")
EXTERNAL_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
PAGE_SIZE_MAX = 100
MINOR_UNITS_MAX = 10**15


# channel ids the ledger itself uses as idempotency scopes: never a caller's
RESERVED_CHANNELS = frozenset({"erasure", "program", "settlement"})


def channel_id(value: str, field: str = "context.channel_id") -> str:
    if not value:
        raise ValidationError(field, "is required")
    if value in RESERVED_CHANNELS:
        raise ValidationError(field, "names a channel reserved for the ledger itself")
    if not CHANNEL_ID_RE.fullmatch(value):
        raise ValidationError(
            field, "must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a-z or 0-9"
        )
    return value


def optional_store_id(value: str) -> str:
    return channel_id(value, "context.store_id") if value else ""


def optional_external_id(value: str) -> str:
    if value and not EXTERNAL_ID_RE.fullmatch(value):
        raise ValidationError(
            "context.external_transaction_id",
            "must be 1-128 printable ASCII characters without spaces",
        )
    return value


def idempotency_key(value: str) -> str:
    if not value:
        raise ValidationError("idempotency_key", "is required")
    if not IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise ValidationError(
            "idempotency_key", "must be 8-128 characters of A-Z, a-z, 0-9, '.', '_', ':', '-'"
        )
    return value


def member_account_id(value: str, field: str = "member_account_id") -> str:
    if not value:
        raise ValidationError(field, "is required")
    if not MEMBER_ACCOUNT_RE.fullmatch(value):
        raise ValidationError(field, "must be 'mbr_' followed by 26 characters of a-z, 2-7")
    return value


def points(value: int, *, limit: int, field: str = "points") -> int:
    if value <= 0:
        raise ValidationError(field, "must be greater than 0")
    if value > limit:
        raise ValidationError(field, f"must be at most {limit} (the configured per-entry limit)")
    return value


def sequence(value: int, field: str) -> int:
    if value <= 0:
        raise ValidationError(field, "must be a journal sequence number (>= 1)")
    return value


@lru_cache(maxsize=512)
def _is_iso4217(code: str) -> bool:
    return pycountry.currencies.get(alpha_3=code) is not None


def money(minor_units: int, currency_code: str, field: str) -> tuple[int, str]:
    if minor_units < 0:
        raise ValidationError(f"{field}.minor_units", "must be >= 0")
    if minor_units > MINOR_UNITS_MAX:
        raise ValidationError(f"{field}.minor_units", f"must be at most {MINOR_UNITS_MAX}")
    if not currency_code:
        raise ValidationError(f"{field}.currency_code", "is required when a purchase is given")
    if not (len(currency_code) == 3 and currency_code.isascii() and currency_code.isupper()):
        raise ValidationError(
            f"{field}.currency_code", "must be a 3-letter upper-case ISO 4217 code"
        )
    if not _is_iso4217(currency_code):
        raise ValidationError(f"{field}.currency_code", "is not an ISO 4217 currency code")
    return minor_units, currency_code


def page_size(value: int, default: int = 20) -> int:
    if value < 0 or value > PAGE_SIZE_MAX:
        raise ValidationError(
            "page_size", f"must be between 0 and {PAGE_SIZE_MAX} (0 means {default})"
        )
    return value or default


_PROGRAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
MAX_CATEGORIES = 16


def program_name(value: str, field: str) -> str:
    """A category or partner id: [a-z0-9][a-z0-9_-]{0,39}."""
    if not _PROGRAM_NAME.fullmatch(value):
        raise ValidationError(field, "must match [a-z0-9][a-z0-9_-]{0,39}")
    return value


def categories(values: Sequence[str], field: str = "categories") -> tuple[str, ...]:
    if len(values) > MAX_CATEGORIES:
        raise ValidationError(field, f"at most {MAX_CATEGORIES} categories")
    found = tuple(program_name(c, f"{field}[{i}]") for i, c in enumerate(values))
    if len(set(found)) != len(found):
        raise ValidationError(field, "must not repeat a category")
    return tuple(sorted(found))


def hold_minutes(value: int) -> int:
    if not 0 <= value <= 10_080:
        raise ValidationError("minutes", "must be between 0 (the program's default) and 10080")
    return value
