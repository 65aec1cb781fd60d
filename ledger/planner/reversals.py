"""Reversals (refunds and corrections) of an earn, a redemption or a
capture: never more than is left of it, by the channels the program's
reversal policy allows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import KIND_CAPTURE, lot_account, pending_account
from ledger.commands import (
    KIND_EARN,
    KIND_REDEEM,
    KIND_REVERSE,
    PROGRAM_REDEEMED,
    Appended,
    Reverse,
)
from ledger.errors import (
    AccountClosedError,
    InsufficientPointsError,
    NotFoundError,
    NotReversibleError,
    ReversalNotAllowedError,
)
from ledger.planner.records import Original, first
from ledger.planner.referrals import refunded_inside_window
from ledger.program.lots import Family, pair

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def reverse(planner: BatchPlanner, cmd: Reverse) -> Appended:
    original = planner.originals.get(cmd.original_sequence)
    if original is None or original.owner != cmd.account:
        # one answer for both: a sequence is guessable, whose entry it is
        # must not be
        raise NotFoundError("original_sequence: no such entry of member_account_id")
    if not planner.program.reversals.allows(cmd.meta.channel_id, original.channel):
        raise ReversalNotAllowedError(cmd.meta.channel_id, original.channel)
    if original.kind not in (KIND_EARN, KIND_REDEEM, KIND_CAPTURE):
        raise NotReversibleError(
            f"original_sequence: a {original.kind} entry cannot be reversed",
            metadata={"kind": original.kind},
        )
    left = original.left
    if left == 0:
        raise NotReversibleError(
            "original_sequence: entry is already fully reversed",
            metadata={"left_to_reverse": "0"},
        )
    points = left if cmd.points is None else cmd.points
    if points > left:
        raise NotReversibleError(
            "points: exceeds what is left to reverse on the entry "
            "(see left_to_reverse in ErrorInfo)",
            metadata={"left_to_reverse": str(left), "requested": str(points)},
        )
    family = planner.families.get(original.owner)
    if family is None or family.closed:
        raise AccountClosedError("original_sequence")
    targets = first(original.limits(), points)
    if original.kind == KIND_EARN:
        sources = _clawback(family, original, points)
    else:
        sources = [(PROGRAM_REDEEMED, points)]
    postings = pair(sources, targets)
    appended = planner.post(
        KIND_REVERSE,
        cmd.meta.channel_id,
        original.sequence,
        postings,
        cmd.details,
        family.owner,
    )
    for key, n in targets:
        original.reversed[key] = original.reversed.get(key, 0) + n
    if original.kind == KIND_EARN and original.sequence in family.stats.pending:
        refunded_inside_window(planner, family, original)
    return appended


def _clawback(family: Family, original: Original, points: int) -> list[tuple[str, int]]:
    """Where a refund takes an earn's points back from: the earn's own
    lot first (pending points before anything else), then the member's
    other available lots, soonest expiry first."""
    lot = original.sequence
    own = [
        a
        for a in (pending_account(family.owner, lot), lot_account(family.owner, lot))
        if family.accounts.get(a, 0) > 0
    ]
    legacy = [family.owner] if not original.postings[0].to_account.count("/") else []
    sources: list[tuple[str, int]] = []
    left = points
    for account in own + legacy:
        use = min(left, family.accounts.get(account, 0))
        if use:
            sources.append((account, use))
            left -= use
    used = {a for a, _ in sources}
    for account, have in family.spend_order():
        if left == 0:
            break
        if account in used:
            continue
        use = min(have, left)
        sources.append((account, use))
        left -= use
    if left:
        available = points - left
        raise InsufficientPointsError(available=available, requested=points)
    return sources
