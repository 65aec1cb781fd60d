"""Account ids of the journal: member families (lots, pending, held) and
program accounts (docs/journal-format.md §5.1, §5.2).

    mbr_X            lot 0 of member mbr_X (points from before lots existed)
    mbr_X/lot/N      available points of lot N (N >= 1)
    mbr_X/pending/N  points of lot N inside the return window (N >= 1)
    mbr_X/held/N     points of lot N held by an open hold (N >= 0)

N is a decimal without leading zeros, at most 2^63 - 1 (a sequence). The
owner of a member account is the part before the first ``/``; every other
account is its own owner. A member account is recognized by the ``mbr_``
prefix alone (as in audit.entry_format); the owner's characters are not
checked here.

Pure (no I/O) and imports nothing from ledger/: the offline verifier
(audit/chain.py) and the ledger both use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from audit.entry_format import MEMBER_ACCOUNT_PREFIX, PROGRAM_ISSUED, is_member_account

PROGRAM_EXPIRED: Final = "program:expired"  # points whose lot expired
ISSUED_PREFIX: Final = PROGRAM_ISSUED  # program:issued and program:issued:<rule>
PARTNER_PREFIX: Final = "partner:"  # partner:<id>, a partner program's clearing account
# shortfall:<store>, what a store handed over in an outage beyond the member's points
SHORTFALL_PREFIX: Final = "shortfall:"

KIND_HOLD: Final = "hold"
KIND_CAPTURE: Final = "capture"
KIND_RELEASE: Final = "release"
KIND_MATURE: Final = "mature"
KIND_EXPIRE: Final = "expire"
KIND_TRANSFER: Final = "transfer"
KIND_EXCHANGE_OUT: Final = "exchange_out"
KIND_EXCHANGE_IN: Final = "exchange_in"
KIND_SHORTFALL: Final = "shortfall"  # a replayed offline redemption beyond the member's points
KIND_SETTLEMENT: Final = "settlement"  # a store paid (part of) its shortfall
PROGRAM_SETTLED: Final = "program:settled"  # minus every shortfall point stores settled
# vouchers (docs/journal-format.md §5.3): points a member paid for a reward's
# voucher sit in voucher:<reward> until it is redeemed, expires or is cancelled
VOUCHER_PREFIX: Final = "voucher:"
KIND_VOUCHER_ISSUE: Final = "voucher_issue"  # lots -> voucher:<reward>
KIND_VOUCHER_REDEEM: Final = "voucher_redeem"  # voucher:<reward> -> program:redeemed
KIND_VOUCHER_EXPIRE: Final = "voucher_expire"  # voucher:<reward> -> program:expired
KIND_VOUCHER_CANCEL: Final = "voucher_cancel"  # voucher:<reward> -> the lots it came from

# MemberAccount.form
FORM_LEGACY: Final = "legacy"  # mbr_X, lot 0
FORM_LOT: Final = "lot"
FORM_PENDING: Final = "pending"
FORM_HELD: Final = "held"

_SUB_FORMS: Final = frozenset({FORM_LOT, FORM_PENDING, FORM_HELD})
_MAX_LOT: Final = 2**63 - 1  # sequences are stored in signed 64-bit columns
_PROGRAM_NAME = re.compile(r"[a-z0-9_-]{1,40}")  # an earn rule or a partner id
# a store or channel id short enough that shortfall:<id> fits an account id (64)
_STORE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,53}")
MAX_SHORTFALL_STORE: Final = 54


@dataclass(frozen=True, slots=True)
class MemberAccount:
    """A well-formed member account id, parsed."""

    owner: str  # mbr_X
    form: str  # FORM_LEGACY, FORM_LOT, FORM_PENDING or FORM_HELD
    lot: int  # N; 0 for FORM_LEGACY

    @property
    def available(self) -> str:
        """The available form of this account's lot."""
        return lot_account(self.owner, self.lot)


def _lot_number(text: str, minimum: int) -> int | None:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        return None
    if len(text) > len(str(_MAX_LOT)):
        return None
    n = int(text)
    return n if minimum <= n <= _MAX_LOT else None


def parse_member_account(account: str) -> MemberAccount | None:
    """The parts of a well-formed member account id; None for anything else
    (a program account, or a malformed member id such as ``mbr_x/lot/01``,
    ``mbr_x/lot/0`` or ``mbr_x/foo/1``)."""
    if not is_member_account(account):
        return None
    if "/" not in account:
        return MemberAccount(account, FORM_LEGACY, 0)
    parts = account.split("/")
    if len(parts) != 3 or parts[1] not in _SUB_FORMS:
        return None
    owner, form, number = parts
    n = _lot_number(number, 0 if form == FORM_HELD else 1)
    return None if n is None else MemberAccount(owner, form, n)


def owner_of(account: str) -> str:
    """The member a member account belongs to (the part before the first
    ``/``, whether or not the rest is well formed); any other account itself."""
    if not is_member_account(account):
        return account
    return account.split("/", 1)[0]


def _parse_strict(account: str) -> MemberAccount:
    parsed = parse_member_account(account)
    if parsed is None:
        raise ValueError(f"not a well-formed member account id: {account!r}")
    return parsed


def available_form(account: str) -> str:
    """``mbr_X/lot/N`` for ``held/N``, ``pending/N`` and ``lot/N`` (N >= 1);
    the bare ``mbr_X`` for lot 0 (``mbr_X`` itself and ``mbr_X/held/0``).
    A non-member account is returned as it is; a malformed member id raises
    ValueError."""
    if not is_member_account(account):
        return account
    return _parse_strict(account).available


def lot_of(account: str) -> int:
    """The lot number N of a member account (0 for the legacy ``mbr_X``);
    ValueError for a program account or a malformed member id."""
    return _parse_strict(account).lot


def _owner(owner: str) -> str:
    if not owner.startswith(MEMBER_ACCOUNT_PREFIX) or "/" in owner:
        raise ValueError(f"not a member id: {owner!r}")
    return owner


def _check_lot(n: int, minimum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not minimum <= n <= _MAX_LOT:
        raise ValueError(f"lot number out of range: {n!r}")
    return n


def lot_account(owner: str, n: int) -> str:
    """The available form of lot ``n``: ``owner`` for n = 0, else ``owner/lot/n``."""
    _owner(owner)
    return owner if _check_lot(n, 0) == 0 else f"{owner}/lot/{n}"


def pending_account(owner: str, n: int) -> str:
    """``owner/pending/n`` (n >= 1)."""
    return f"{_owner(owner)}/pending/{_check_lot(n, 1)}"


def held_account(owner: str, n: int) -> str:
    """``owner/held/n`` (n >= 0)."""
    return f"{_owner(owner)}/held/{_check_lot(n, 0)}"


def is_issued_account(account: str) -> bool:
    """``program:issued`` or ``program:issued:<rule>``, rule [a-z0-9_-]{1,40}."""
    if account == ISSUED_PREFIX:
        return True
    rule = account.removeprefix(ISSUED_PREFIX + ":")
    return rule != account and _PROGRAM_NAME.fullmatch(rule) is not None


def is_partner_account(account: str) -> bool:
    """``partner:<id>``, id [a-z0-9_-]{1,40}."""
    partner = account.removeprefix(PARTNER_PREFIX)
    return partner != account and _PROGRAM_NAME.fullmatch(partner) is not None


def voucher_account(reward: str) -> str:
    """``voucher:<reward>``: the points paid for a reward's outstanding vouchers."""
    if _PROGRAM_NAME.fullmatch(reward) is None:
        raise ValueError(f"not a reward id: {reward!r}")
    return VOUCHER_PREFIX + reward


def is_voucher_account(account: str) -> bool:
    """``voucher:<reward>``, reward [a-z0-9_-]{1,40}."""
    reward = account.removeprefix(VOUCHER_PREFIX)
    return reward != account and _PROGRAM_NAME.fullmatch(reward) is not None


def shortfall_account(store: str) -> str:
    """``shortfall:<store>``: a store's (or channel's) shortfall clearing account."""
    if _STORE_NAME.fullmatch(store) is None:
        raise ValueError(f"not a store or channel id: {store!r}")
    return SHORTFALL_PREFIX + store


def is_shortfall_account(account: str) -> bool:
    """``shortfall:<store>``, store [a-z0-9][a-z0-9._-]{0,53}."""
    store = account.removeprefix(SHORTFALL_PREFIX)
    return store != account and _STORE_NAME.fullmatch(store) is not None
