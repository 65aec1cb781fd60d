"""Earning points: a purchase by the program's rules (or a given number of
points) into a new lot of the member's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.entry_format import Posting
from ledger.commands import KIND_EARN, PROGRAM_ISSUED, Appended, Earn
from ledger.errors import ValidationError
from ledger.planner.referrals import min_referral_minor, reward_referrer
from ledger.planner.tiering import retier
from ledger.program.earn_rules import compute_earn, issued_account
from ledger.program.lots import LotTerms
from ledger.program.terms import expires_us, matures_us

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def earn(planner: BatchPlanner, cmd: Earn) -> Appended:
    family = planner.family_of(cmd.account)
    program = planner.program
    when = cmd.occurred_us or planner.now_us
    rules: tuple[tuple[str, int], ...] = ()
    if cmd.points:
        sources = [(PROGRAM_ISSUED, cmd.points)]
    else:
        rules = compute_earn(
            program,
            purchase_minor=cmd.details.purchase_minor_units,
            currency=cmd.details.purchase_currency,
            categories=cmd.categories,
            channel_id=cmd.meta.channel_id,
            member=family.owner,
            tier=family.stats.tier,
            recent=family.recent,
            when_us=when,
        )
        sources = [(issued_account(rule), n) for rule, n in rules]
        total = sum(n for _, n in rules)
        if planner.max_points and total > planner.max_points:
            raise ValidationError(
                "purchase", f"earns more than the per-entry limit of {planner.max_points} points"
            )
    data = planner.seal_details(family.owner, cmd.details)  # before anything changes
    purchase = bool(cmd.details.purchase_currency) and cmd.details.purchase_minor_units > 0
    terms = LotTerms(
        expires_us=expires_us(program, when),
        matures_us=(
            matures_us(program, when, cmd.meta.channel_id, cmd.categories) if purchase else 0
        ),
    )
    if terms.matures_us and terms.matures_us <= planner.now_us:
        terms = LotTerms(terms.expires_us, 0)  # an offline purchase already past its window
    seq = planner.head.sequence + 1
    target = planner.new_lot(family.owner, seq, terms)
    postings = [Posting(source, target, n) for source, n in sources]
    # the referrer's reward: the first qualifying purchase since the
    # member was referred (a clawed-back reward lets the next one qualify)
    qualifying = (
        purchase
        and family.stats.referrer != ""
        and family.stats.reward_seq == 0
        and cmd.details.purchase_minor_units >= min_referral_minor(planner)
    )
    if purchase:
        family.note_purchase(cmd.categories, when)
        family.stats.add_purchase(
            seq, cmd.details.purchase_minor_units, when, matured=not terms.matures_us
        )
    appended = planner.post(
        KIND_EARN,
        cmd.meta.channel_id,
        0,
        postings,
        cmd.details,
        family.owner,
        data=data,
        rules=rules,
    )
    if qualifying:
        reward_referrer(planner, family, terms.matures_us, appended.entry.sequence)
    retier(planner, family)
    return appended
