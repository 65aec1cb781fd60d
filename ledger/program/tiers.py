"""The growth ladder (DOMAIN.md): a member's tier from what the journal
says they did, with the program file's thresholds.

    trial        a first purchase (matured: pending purchases do not count)
    grower       cumulative spend >= grower_spend_units
    active       on average >= active_purchases_per_month purchases a month
                 over the last active_months calendar months
    contributor  >= contributor_referrals members referred who bought
    leader       spend >= leader_spend_units and >= leader_referrals referrals

The tier is the highest level whose condition holds. Upgrades apply at
once; downgrades only at a review (every review_days). Pure: the planner
keeps ``Stats`` per member and writes every change to ``tier_changes``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import orjson

from ledger.program.config import TIERS, Program

LEVEL = {name: i for i, name in enumerate(("none", *TIERS))}
_DAY_US = 86_400_000_000


def month_key(time_us: int) -> int:
    """Months since year 0 (UTC) of a time: 2026-01 -> 2026 * 12."""
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, tz=dt.UTC)
    return moment.year * 12 + moment.month - 1


@dataclass(slots=True)
class Stats:
    """What a member did, as far as tiers and referrals need it."""

    purchases: int = 0  # matured purchases
    spend_minor: int = 0  # of matured purchases
    months: dict[int, int] = field(default_factory=dict)  # month_key -> matured purchases
    # purchases still inside their return window: lot -> (minor units, month_key)
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)
    referrals: int = 0  # referred members whose rewarded purchase cleared its window
    tier: str = "none"
    review_us: int = 0  # next downgrade review; 0: none scheduled
    referrer: str = ""  # who referred this member ("" none)
    reward_seq: int = 0  # the referrer's reward for this member's first purchase
    reward_purchase: int = 0  # the purchase (earn entry) that triggered it
    # a referrer's rewards still pending (their purchase inside its window):
    # they count in ``referrals`` once they clear
    pending_rewards: list[int] = field(default_factory=list)
    changes: int = 0  # tier changes so far (numbers tier_changes rows)
    changed: bool = False

    @property
    def bought(self) -> bool:
        """Has made a purchase (matured or still pending)."""
        return self.purchases > 0 or bool(self.pending)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "purchases": self.purchases,
                "spend_minor": self.spend_minor,
                "months": {str(k): v for k, v in self.months.items()},
                "pending": {str(k): list(v) for k, v in self.pending.items()},
                "referrals": self.referrals,
                "tier": self.tier,
                "review_us": self.review_us,
                "referrer": self.referrer,
                "reward_seq": self.reward_seq,
                "reward_purchase": self.reward_purchase,
                "pending_rewards": self.pending_rewards,
                "changes": self.changes,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Stats:
        d = orjson.loads(data)
        return cls(
            purchases=d["purchases"],
            spend_minor=d["spend_minor"],
            months={int(k): v for k, v in d["months"].items()},
            pending={int(k): (v[0], v[1]) for k, v in d["pending"].items()},
            referrals=d["referrals"],
            tier=d["tier"],
            review_us=d["review_us"],
            referrer=d["referrer"],
            reward_seq=d["reward_seq"],
            reward_purchase=d.get("reward_purchase", 0),  # added later: absent in old rows
            pending_rewards=list(d.get("pending_rewards", ())),
            changes=d["changes"],
        )

    def add_purchase(self, lot: int, minor: int, when_us: int, matured: bool) -> None:
        if matured:
            self._count(minor, month_key(when_us))
        else:
            self.pending[lot] = (minor, month_key(when_us))
        self.changed = True

    def mature(self, lot: int) -> bool:
        found = self.pending.pop(lot, None)
        if found is None:
            return False
        self._count(*found)
        self.changed = True
        return True

    def drop_pending(self, lot: int) -> None:
        """A purchase refunded inside its window never counts."""
        if self.pending.pop(lot, None) is not None:
            self.changed = True

    def _count(self, minor: int, month: int) -> None:
        self.purchases += 1
        self.spend_minor += minor
        self.months[month] = self.months.get(month, 0) + 1
        for old in [m for m in self.months if m < month - 36]:
            del self.months[old]  # keep three years


def earned_tier(stats: Stats, program: Program, now_us: int) -> str:
    rules, unit = program.tiers, program.earn.minor_per_unit
    spend = stats.spend_minor // unit
    tier = "none"
    if stats.purchases >= 1:
        tier = "trial"
    if spend >= rules.grower_spend_units:
        tier = "grower"
    this_month = month_key(now_us)
    recent = sum(
        n for m, n in stats.months.items() if this_month - rules.active_months < m <= this_month
    )
    if recent >= rules.active_purchases_per_month * rules.active_months:
        tier = "active"
    if stats.referrals >= rules.contributor_referrals:
        tier = "contributor"
    if spend >= rules.leader_spend_units and stats.referrals >= rules.leader_referrals:
        tier = "leader"
    return tier


def next_tier(stats: Stats, program: Program, now_us: int) -> tuple[str, str] | None:
    """(new tier, reason) when the tier changes now, else None: an upgrade
    at once, a downgrade only when the review is due."""
    earned = earned_tier(stats, program, now_us)
    if LEVEL[earned] > LEVEL[stats.tier]:
        return earned, "upgrade"
    if LEVEL[earned] < LEVEL[stats.tier] and stats.review_us and stats.review_us <= now_us:
        return earned, "review"
    return None


def review_after(program: Program, now_us: int) -> int:
    return now_us + program.tiers.review_days * _DAY_US
