"""The purpose registry: why personal data may be read, and which fields.

A read of personal data declares a purpose. The purpose names the roles
that may declare it and the fields it shows, each in full or masked; every
other field is withheld. Deny by default:

- no purpose declared: denied (PERMISSION_DENIED);
- a purpose that is not in the registry: INVALID_ARGUMENT naming it as unknown;
- a purpose the caller's role may not declare: denied;
- ``break_glass`` (every field) is declarable by no role; only a principal
  holding an active, admin-granted break-glass grant may use it
  (access/break_glass.py).

``project`` applies a purpose to a record: it is the one place where fields
are kept, masked or withheld, and it reports which was which so the access
log can name the fields that left.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from access.errors import AccessRequestError, PermissionDeniedError
from access.masking import mask
from access.principal import Principal, Role

BREAK_GLASS = "break_glass"
# the store, order reference and purchase of journal entries (encrypted
# under the member's key): behavioural data, shown like a personal field
ORDER_DETAILS = "order_details"


class Show(enum.Enum):
    FULL = "full"
    MASKED = "masked"


@dataclass(frozen=True, slots=True)
class Purpose:
    name: str
    description: str
    roles: frozenset[Role]  # empty: only under a break-glass grant
    fields: Mapping[str, Show] = field(default_factory=dict)
    all_fields: bool = False  # every field, configured custom fields included

    def show(self, name: str) -> Show | None:
        """How this purpose shows field ``name``; None: withheld."""
        return Show.FULL if self.all_fields else self.fields.get(name)


F, M = Show.FULL, Show.MASKED

PURPOSES: Mapping[str, Purpose] = {
    p.name: p
    for p in (
        Purpose(
            "customer_support",
            "answer a member's question: recognize them, never read contact details in full",
            frozenset({Role.MEMBER_SERVICE}),
            {"name": F, "phone": M, "email": M, ORDER_DETAILS: F},
        ),
        Purpose(
            "redemption_delivery",
            "deliver a redeemed reward: who, where, and a number for the courier",
            frozenset({Role.MEMBER_SERVICE}),
            {"name": F, "phone": F, "postal_address": F},
        ),
        Purpose(
            "fraud_investigation",
            "investigate suspected fraud (fake orders, self-referral, account takeover)",
            frozenset({Role.MEMBER_SERVICE, Role.SECURITY}),
            {"name": F, "phone": F, "email": F, "birth_date": M, ORDER_DETAILS: F},
        ),
        Purpose(
            "legal_request",
            "answer a subject-access request or a court order: everything held",
            frozenset({Role.MEMBER_SERVICE}),
            all_fields=True,
        ),
        Purpose(
            BREAK_GLASS,
            "emergency access under an admin-granted, time-limited break-glass grant",
            frozenset(),
            all_fields=True,
        ),
    )
}


def resolve(principal: Principal, name: str, *, break_glass: bool = False) -> Purpose:
    """The purpose ``principal`` declares, or the error that denies it.

    ``break_glass`` says whether the principal holds an active grant.
    """
    if not name:
        raise PermissionDeniedError("purpose: a read of personal data needs a declared purpose")
    purpose = PURPOSES.get(name)
    if purpose is None:
        raise AccessRequestError("purpose", "unknown purpose (see AccessService.ListPurposes)")
    if name == BREAK_GLASS:
        if not break_glass:
            raise PermissionDeniedError("purpose: break_glass needs an active break-glass grant")
        return purpose
    if principal.role not in purpose.roles:
        raise PermissionDeniedError(
            f"purpose: role {principal.role.value} may not declare purpose {name}"
        )
    return purpose


@dataclass(frozen=True, slots=True)
class Projection:
    values: dict[str, str]  # what may leave: full or masked values
    masked: tuple[str, ...]
    withheld: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the fields that leave, for the access log."""
        return tuple(self.values)


def project(purpose: Purpose, record: Mapping[str, str | None]) -> Projection:
    """Keep, mask or withhold every field of ``record``. None marks a field
    that is set but was not decrypted (the purpose does not show it); empty
    values are absent, not withheld."""
    values: dict[str, str] = {}
    masked: list[str] = []
    withheld: list[str] = []
    for name in sorted(record):
        value = record[name]
        show = purpose.show(name)
        if value is None or show is None:
            if value != "":
                withheld.append(name)
            continue
        if not value:
            continue
        if show is Show.MASKED:
            values[name] = mask(name, value)
            masked.append(name)
        else:
            values[name] = value
    return Projection(values, tuple(masked), tuple(withheld))


def fields_needed(purpose: Purpose) -> frozenset[str] | None:
    """The fields worth decrypting for ``purpose`` (None: all of them)."""
    return None if purpose.all_fields else frozenset(purpose.fields)
