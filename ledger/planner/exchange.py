"""Exchanging points with a partner program at its published rates:
out of the member's lots to the partner's clearing account, or in from it
into a new lot."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from audit.accounts import KIND_EXCHANGE_IN, KIND_EXCHANGE_OUT, PARTNER_PREFIX
from audit.entry_format import Posting
from ledger.commands import Appended, Exchange
from ledger.errors import PreconditionError, ValidationError
from ledger.program.lots import LotTerms
from ledger.program.terms import expires_us

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def exchange(planner: BatchPlanner, cmd: Exchange) -> Appended:
    family = planner.family_of(cmd.account)
    partner = planner.program.partner(cmd.partner)
    if partner is None:
        raise ValidationError("partner_id", "names no partner of the program")
    clearing = PARTNER_PREFIX + partner.id
    if cmd.direction == "out":
        if partner.units_per_point_out is None:
            raise PreconditionError("partner_id: the partner takes no points")
        exact = Fraction(cmd.points) * Fraction(partner.units_per_point_out)
        if exact.denominator != 1:  # no point may leave without its value
            step = Fraction(partner.units_per_point_out).denominator
            raise ValidationError(
                "points", f"must convert to whole partner units: a multiple of {step}"
            )
        postings = [Posting(a, clearing, n) for a, n in planner.take(family, cmd.points)]
        return planner.post(
            KIND_EXCHANGE_OUT,
            cmd.meta.channel_id,
            0,
            postings,
            cmd.details,
            family.owner,
            partner_units=int(exact),
        )
    if partner.points_per_unit_in is None:
        raise PreconditionError("partner_id: the partner sends no points")
    points = int(cmd.units * partner.points_per_unit_in)
    if points < 1:
        raise ValidationError("partner_units", "too few to make one point")
    if planner.max_points and points > planner.max_points:
        raise ValidationError(
            "partner_units", f"make more than the per-entry limit of {planner.max_points} points"
        )
    data = planner.seal_details(family.owner, cmd.details)  # before anything changes
    seq = planner.head.sequence + 1
    terms = LotTerms(expires_us(planner.program, planner.now_us))
    target = planner.new_lot(family.owner, seq, terms)
    return planner.post(
        KIND_EXCHANGE_IN,
        cmd.meta.channel_id,
        0,
        [Posting(clearing, target, points)],
        cmd.details,
        family.owner,
        data=data,
        partner_units=cmd.units,
    )
