"""Holds: points set aside for a checkout, then captured (in full or in
part, the rest back to their lots) or released, by the channel or by
timing out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import KIND_CAPTURE, KIND_HOLD, KIND_RELEASE, held_account, lot_of
from audit.entry_format import Posting
from ledger.commands import PROGRAM_REDEEMED, Appended, Capture, EntryDetails, Hold, Release
from ledger.errors import HoldEndedError, InsufficientPointsError, NotFoundError, ValidationError
from ledger.program.lots import HoldState

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def hold(planner: BatchPlanner, cmd: Hold) -> Appended:
    family = planner.family_of(cmd.account)
    limits = planner.program.holds
    minutes = cmd.minutes or limits.default_minutes
    if minutes > limits.max_minutes:
        raise ValidationError(
            "minutes", f"must be at most {limits.max_minutes} (the program's limit)"
        )
    postings = [
        Posting(a, held_account(family.owner, lot_of(a)), n)
        for a, n in planner.take(family, cmd.points)
    ]
    data = planner.seal_details(family.owner, cmd.details)  # before anything changes
    expires = planner.now_us + minutes * 60_000_000
    seq = planner.head.sequence + 1
    state = HoldState(seq, family.owner, tuple(postings), expires, cmd.meta.channel_id)
    family.add_hold(state)
    planner.holds[seq] = state
    planner.new_holds.append(state)
    return planner.post(
        KIND_HOLD,
        cmd.meta.channel_id,
        0,
        postings,
        cmd.details,
        family.owner,
        data=data,
        hold_expires_us=expires,
    )


def resolve(planner: BatchPlanner, cmd: Capture | Release) -> Appended:
    state = planner.holds.get(cmd.hold_sequence)
    ended = planner.ended.get(cmd.hold_sequence)
    if state is None and ended is not None and ended[0] == cmd.account:
        raise HoldEndedError(cmd.hold_sequence, ended[1])  # e.g. the loser of a race
    if state is None or state.owner != cmd.account:  # another member's: as if none
        raise NotFoundError(
            "hold_sequence: no open hold with this sequence (never made, already "
            "captured or released, or timed out)"
        )
    planner.family_of(state.owner)
    if isinstance(cmd, Release):
        return end_hold(planner, state, KIND_RELEASE, cmd.meta.channel_id, 0, cmd.details)
    points = state.points if cmd.points is None else cmd.points
    if points > state.points:
        raise InsufficientPointsError(available=state.points, requested=points)
    return end_hold(planner, state, KIND_CAPTURE, cmd.meta.channel_id, points, cmd.details)


def end_hold(
    planner: BatchPlanner,
    state: HoldState,
    kind: str,
    channel: str,
    capture: int,
    details: EntryDetails,
) -> Appended:
    """Capture ``capture`` points of the hold and return the rest to their lots."""
    postings: list[Posting] = []
    left = capture
    for p in state.postings:
        use = min(left, p.points)
        left -= use
        if use:
            postings.append(Posting(p.to_account, PROGRAM_REDEEMED, use))
        if p.points - use:
            postings.append(Posting(p.to_account, p.from_account, p.points - use))
    family = planner.families[state.owner]
    family.holds.pop(state.sequence, None)
    planner.holds.pop(state.sequence, None)
    appended = planner.post(kind, channel, state.sequence, postings, details, state.owner)
    planner.ended_holds.append((state.sequence, appended.entry.sequence))
    planner.ended[state.sequence] = (state.owner, appended.entry.sequence)
    return appended
