"""Tier reviews: after every change to what a member qualifies by (an
earn, a referral that counts, time passing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.program.lots import Family
from ledger.program.tiers import next_tier, review_after

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def retier(planner: BatchPlanner, family: Family) -> None:
    """Move the member to the tier its qualification now gives (a change is
    kept in ``tier_changes``) and schedule its next review."""
    stats = family.stats
    change = next_tier(stats, planner.program, planner.now_us)
    if change is not None:
        tier, reason = change
        stats.changes += 1
        planner.tier_changes.append((family.owner, stats.changes, stats.tier, tier, reason))
        stats.tier = tier
        stats.changed = True
    if stats.tier != "none" and (
        change is not None or not stats.review_us or stats.review_us <= planner.now_us
    ):
        stats.review_us = review_after(planner.program, planner.now_us)
        stats.changed = True
