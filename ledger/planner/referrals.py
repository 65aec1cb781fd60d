"""Referrals: registering one (with the program's anti-abuse checks), the
referrer's reward on the referred member's first qualifying purchase, and
taking the reward back when that purchase is refunded inside its window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import pending_account
from audit.entry_format import Posting
from ledger.commands import KIND_EARN, KIND_REVERSE, EntryDetails, Refer, Referred
from ledger.errors import ReferralRefusedError, ValidationError
from ledger.planner.records import SYSTEM, Original, first
from ledger.planner.tiering import retier
from ledger.program.earn_rules import REFERRAL_RULE, issued_account
from ledger.program.lots import Family, LotTerms, pair
from ledger.program.referrals import EXPLAINED, ReferralFacts, refusal
from ledger.program.terms import expires_us

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def min_referral_minor(planner: BatchPlanner) -> int:
    """The smallest purchase (in minor units) that earns the referrer's reward."""
    program = planner.program
    return program.referrals.min_purchase_units * program.earn.minor_per_unit


def refer(planner: BatchPlanner, cmd: Refer) -> Referred:
    referrer = planner.family_of(cmd.account)
    referred = planner.family_of(cmd.referred)
    if referrer.owner == referred.owner:
        raise ValidationError("referred_member_account_id", "must differ from the referrer")
    facts = planner.referral_facts.get(
        (referrer.owner, referred.owner), ReferralFacts(0, 0, False, b"")
    )
    # what this batch registered counts towards the caps too
    mine = [r for r in planner.new_referrals if r.account == referrer.owner]
    same_device = [
        r for r in planner.new_referrals if cmd.device_token and r.device_token == cmd.device_token
    ]
    facts = ReferralFacts(
        facts.referrer_recent + len(mine),
        facts.device_recent + len(same_device),
        facts.shared_lookup,
        facts.referrer_device,
    )
    reason = refusal(
        planner.program, referrer, referred, facts, cmd.device_token, cmd.referrer_device_token
    )
    if reason is not None:
        # kept for fraud review (security reports), though the call fails
        planner.refusals.append((referrer.owner, referred.owner, reason))
        raise ReferralRefusedError(reason, EXPLAINED[reason])
    referred.stats.referrer = referrer.owner
    referred.stats.changed = True
    planner.new_referrals.append(cmd)
    return Referred(referrer.owner, referred.owner, referrer.stats.referrals)


def reward_referrer(planner: BatchPlanner, referred: Family, matures: int, purchase: int) -> None:
    """The referred member's first qualifying purchase: the referrer's
    reward, held pending until that purchase clears its return window;
    only then does the referral count (tiers, super fan)."""
    referrer = planner.families.get(referred.stats.referrer)
    if referrer is None or referrer.closed:
        return
    seq = planner.head.sequence + 1
    terms = LotTerms(expires_us(planner.program, planner.now_us), matures)
    target = planner.new_lot(referrer.owner, seq, terms)
    points = planner.program.referrals.reward_points
    posting = Posting(issued_account(REFERRAL_RULE), target, points)
    planner.post(KIND_EARN, SYSTEM, 0, [posting], EntryDetails(), referrer.owner)
    referred.stats.reward_seq = seq
    referred.stats.reward_purchase = purchase
    referred.stats.changed = True
    if matures:
        referrer.stats.pending_rewards.append(seq)
    else:  # a purchase without a return window has cleared already
        referrer.stats.referrals += 1
    referrer.stats.changed = True
    retier(planner, referrer)


def refunded_inside_window(planner: BatchPlanner, family: Family, original: Original) -> None:
    """A refund of a purchase still inside its return window: in full, the
    purchase never counts; and if it triggered a referral reward still
    pending, the reward goes once what is left of the purchase is below
    the program's minimum (a full refund always)."""
    stats = family.stats
    minor = stats.pending[original.sequence][0]
    total = sum(p.points for p in original.postings)
    left_minor = minor * original.left // total if total else 0
    if original.left == 0:
        stats.drop_pending(original.sequence)
    triggered = stats.reward_purchase == original.sequence or (
        # a reward from before the triggering purchase was kept: the old rule
        stats.reward_purchase == 0 and original.left == 0 and not stats.bought
    )
    if (
        stats.reward_seq
        and triggered
        and (original.left == 0 or left_minor < min_referral_minor(planner))
    ):
        _clawback_reward(planner, family)


def _clawback_reward(planner: BatchPlanner, referred: Family) -> None:
    """The first purchase was refunded while the referrer's reward was
    still pending: the reward goes too (fake orders earn nothing)."""
    reward = planner.originals.get(referred.stats.reward_seq)
    referrer = planner.families.get(referred.stats.referrer)
    if reward is None or referrer is None or referrer.closed:
        return
    pending = pending_account(referrer.owner, reward.sequence)
    points = min(referrer.accounts.get(pending, 0), reward.left)
    if points <= 0:
        return
    postings = pair([(pending, points)], first(reward.limits(), points))
    planner.post(KIND_REVERSE, SYSTEM, reward.sequence, postings, EntryDetails(), referrer.owner)
    for p in postings:
        reward.reversed[p.to_account] = reward.reversed.get(p.to_account, 0) + p.points
    referred.stats.reward_seq = 0
    referred.stats.reward_purchase = 0
    referred.stats.changed = True
    if reward.sequence in referrer.stats.pending_rewards:
        referrer.stats.pending_rewards.remove(reward.sequence)
    else:  # a reward from before pending referrals were kept: it was counted
        referrer.stats.referrals -= 1
    referrer.stats.changed = True
