"""Masks: what a purpose that may only *recognize* a value gets to see.

A masked value lets staff confirm what a caller tells them ("the number
ending in 0000") without reading the value itself. Each function keeps a
fixed, small part and replaces the rest with ``*``; lengths are not
preserved where they would leak (e-mail local parts, names).
"""

from __future__ import annotations

from collections.abc import Callable

MASK = "*"


def mask_phone(value: str) -> str:
    """'+8613800000000' -> '*********0000': the last four digits."""
    digits = [c for c in value if c.isdigit()]
    if len(digits) <= 4:
        return MASK * 4
    return MASK * (len(digits) - 4) + "".join(digits[-4:])


def mask_email(value: str) -> str:
    """'someone@example.invalid' -> 's***@example.invalid'."""
    local, at, domain = value.partition("@")
    if not at or not local:
        return MASK * 3
    return local[0] + MASK * 3 + "@" + domain


def mask_name(value: str) -> str:
    """'Test Person' -> 'T***'."""
    return value[:1] + MASK * 3 if value else ""


def mask_birth_date(value: str) -> str:
    """'1990-01-31' -> '1990-**-**': the year only (an age band)."""
    return value[:4] + "-**-**" if len(value) >= 4 else MASK * 3


def mask_other(value: str) -> str:
    return MASK * 3 if value else ""


MASKS: dict[str, Callable[[str], str]] = {
    "phone": mask_phone,
    "email": mask_email,
    "name": mask_name,
    "birth_date": mask_birth_date,
}


def mask(field: str, value: str) -> str:
    """The masked form of ``value`` for ``field`` (opaque stars for fields
    without a specific mask)."""
    return MASKS.get(field, mask_other)(value)
