"""What time makes due for a member: timed-out holds go back to their
lots, pending lots past their return window mature, lots past their expiry
expire, and so do vouchers past their validity. Run for every member of a
batch before its commands (and by the server's settle sweep), so every
command sees a settled balance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import (
    KIND_EXPIRE,
    KIND_MATURE,
    KIND_RELEASE,
    PROGRAM_EXPIRED,
    lot_account,
    lot_of,
)
from audit.entry_format import Posting
from ledger.commands import EntryDetails
from ledger.planner.holds import end_hold
from ledger.planner.records import SYSTEM
from ledger.planner.tiering import retier
from ledger.planner.vouchers import expire_due

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def settle(planner: BatchPlanner, owner: str) -> None:
    expire_due(planner, owner)  # an erased member's vouchers expire too
    family = planner.families.get(owner)
    if family is None or family.closed:
        return
    holds, maturing, expiring = family.due(planner.now_us)
    for hold in holds:
        end_hold(planner, hold, KIND_RELEASE, SYSTEM, 0, EntryDetails())
    if maturing:
        postings = [Posting(a, lot_account(owner, lot_of(a)), n) for a, n in maturing]
        planner.post(KIND_MATURE, SYSTEM, 0, postings, EntryDetails(), owner)
    # pending purchases whose points were all refunded or spent mature too
    for lot in [n for n in family.stats.pending if family.terms_of(n).matures_us <= planner.now_us]:
        family.stats.mature(lot)
    # rewards for referrals whose purchase cleared its window: they count now
    for seq in [
        s for s in family.stats.pending_rewards if family.terms_of(s).matures_us <= planner.now_us
    ]:
        family.stats.pending_rewards.remove(seq)
        family.stats.referrals += 1
        family.stats.changed = True
    _, _, expiring = family.due(planner.now_us)  # holds released back into expired lots
    if expiring:
        postings = [Posting(a, PROGRAM_EXPIRED, n) for a, n in expiring]
        planner.post(KIND_EXPIRE, SYSTEM, 0, postings, EntryDetails(), owner)
    retier(planner, family)
