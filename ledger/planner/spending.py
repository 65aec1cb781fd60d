"""Spending a member's points: a redemption (offline, the part the points
do not cover is the store's shortfall) and a transfer to another member."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import KIND_SHORTFALL, KIND_TRANSFER, lot_of
from audit.entry_format import Posting
from ledger.commands import KIND_REDEEM, PROGRAM_REDEEMED, Appended, Redeem, Transfer
from ledger.errors import PreconditionError, ValidationError
from ledger.program.lots import LotTerms

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def redeem(planner: BatchPlanner, cmd: Redeem) -> Appended:
    family = planner.family_of(cmd.account)
    # offline, the goods were handed over already: what the member's
    # points do not cover is the store's shortfall (docs/outage.md)
    short = max(0, cmd.points - family.available()) if cmd.offline else 0
    postings = [
        Posting(a, PROGRAM_REDEEMED, n) for a, n in planner.take(family, cmd.points - short)
    ]
    if short:
        postings.append(Posting(cmd.shortfall_account, PROGRAM_REDEEMED, short))
    kind = KIND_SHORTFALL if short else KIND_REDEEM
    return planner.post(kind, cmd.meta.channel_id, 0, postings, cmd.details, family.owner)


def transfer(planner: BatchPlanner, cmd: Transfer) -> Appended:
    sender = planner.family_of(cmd.account)
    receiver = planner.family_of(cmd.to_account)
    if sender.owner == receiver.owner:
        raise ValidationError("to_member_account_id", "must differ from member_account_id")
    rules = planner.program.transfers
    if not rules.enabled:
        raise PreconditionError("transfers: the program does not allow them")
    if cmd.points > rules.max_points:
        raise ValidationError("points", f"must be at most {rules.max_points} per transfer")
    taken = planner.take(sender, cmd.points)
    expiries = [sender.terms_of(lot_of(a)).expires_us for a, _ in taken]
    soonest = min((e for e in expiries if e), default=0)
    data = planner.seal_details(sender.owner, cmd.details)  # before anything changes
    seq = planner.head.sequence + 1
    target = planner.new_lot(receiver.owner, seq, LotTerms(soonest, 0))
    postings = [Posting(a, target, n) for a, n in taken]
    return planner.post(
        KIND_TRANSFER, cmd.meta.channel_id, 0, postings, cmd.details, sender.owner, data=data
    )
