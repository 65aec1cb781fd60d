"""A member's personal fields: which exist, and the rules for their values.

The five standard fields are always known; a program may configure more
(``--member-field``). A field nobody configured is refused, so a channel
cannot store data the program never decided to collect (data
minimization). Values are normalized here (phone to E.164, e-mail
lower-cased) so blind-index lookups match. Every error names the field and
the rule, never the value.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.errors import ValidationError
from ledger.keys.blind_index import normalize_email, normalize_phone

STANDARD_FIELDS = ("name", "phone", "email", "birth_date", "postal_address")
CUSTOM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_LENGTH = {"name": 200, "postal_address": 500}
MAX_CUSTOM_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # newline allowed (addresses)
EARLIEST_BIRTH_YEAR = 1900


@dataclass(frozen=True, slots=True)
class ProfileRules:
    custom_fields: frozenset[str] = frozenset()  # configured by the program
    phone_region: str = "CN"  # how to read numbers without a +country prefix

    def known(self, name: str) -> bool:
        return name in STANDARD_FIELDS or name in self.custom_fields

    def field_names(self) -> tuple[str, ...]:
        return STANDARD_FIELDS + tuple(sorted(self.custom_fields))

    def clean(self, values: Mapping[str, str], *, prefix: str = "profile") -> dict[str, str]:
        """Validated, normalized values; empty values are dropped."""
        out: dict[str, str] = {}
        for name, value in values.items():
            if not self.known(name):
                where = f"{prefix}.custom.{name}" if CUSTOM_NAME.fullmatch(name) else prefix
                raise ValidationError(
                    where, "is not a member field this program collects (data minimization)"
                )
            if value:
                out[name] = self.clean_value(name, value, f"{prefix}.{name}")
        return out

    def clean_value(self, name: str, value: str, where: str) -> str:
        if name == "phone":
            try:
                return normalize_phone(value, self.phone_region)
            except ValueError:
                raise ValidationError(where, "is not a valid phone number") from None
        if name == "email":
            try:
                return normalize_email(value)
            except ValueError:
                raise ValidationError(where, "is not a valid e-mail address") from None
        if name == "birth_date":
            return _birth_date(value, where)
        limit = MAX_LENGTH.get(name, MAX_CUSTOM_LENGTH)
        text = value.strip()
        if not text or len(text) > limit:
            raise ValidationError(where, f"must be 1..{limit} characters")
        if _CONTROL.search(text):
            raise ValidationError(where, "must not contain control characters")
        return text

    def check_names(self, names: Iterable[str], *, where: str) -> list[str]:
        out = []
        for name in names:
            if not self.known(name):
                raise ValidationError(where, "names a field this program does not collect")
            if name in out:
                raise ValidationError(where, "names a field twice")
            out.append(name)
        return out


def _birth_date(value: str, where: str) -> str:
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(where, "must be a date YYYY-MM-DD") from None
    if len(value) != 10:
        raise ValidationError(where, "must be a date YYYY-MM-DD")
    if day.year < EARLIEST_BIRTH_YEAR or day > datetime.date.today():
        raise ValidationError(where, f"must be between {EARLIEST_BIRTH_YEAR} and today")
    return day.isoformat()
