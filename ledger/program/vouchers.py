"""Vouchers as the planner sees them: one per claim of a reward, open
until it is redeemed, expires or is cancelled (docs/program-rules.md §11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from audit.entry_format import Posting

ISSUED: Final = "issued"
REDEEMED: Final = "redeemed"
EXPIRED: Final = "expired"
CANCELLED: Final = "cancelled"


@dataclass(frozen=True, slots=True)
class VoucherState:
    """A voucher: its issue entry's sequence names it; ``postings`` are the
    issue's (the member's lots -> voucher:<reward>), what a cancel gives back."""

    sequence: int
    owner: str
    reward_id: str
    valid_until_us: int
    postings: tuple[Posting, ...]

    @property
    def points(self) -> int:
        return sum(p.points for p in self.postings)


@dataclass(frozen=True, slots=True)
class VoucherEnd:
    """How and when a voucher ended: the entry that ended it and its state."""

    sequence: int  # the voucher (its issue entry)
    owner: str
    reward_id: str
    end_sequence: int
    state: str  # REDEEMED, EXPIRED or CANCELLED
