"""The program file: one versioned TOML document with every rule the ledger
applies (docs/program-rules.md). Validated at start-up; an error names the
key path and the rule, e.g. ``expiry.months: must be >= 1``.

pydantic does the validation: typed models with precise error locations are
what we would otherwise write by hand, less well.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
TIERS = ("trial", "grower", "active", "contributor", "leader")
Tier = Literal["none", "trial", "grower", "active", "contributor", "leader"]
Rate = Annotated[Decimal, Field(ge=0, le=10_000, max_digits=12, decimal_places=6)]
Ratio = Annotated[Decimal, Field(gt=0, le=1_000_000, max_digits=16, decimal_places=8)]
Days = Annotated[int, Field(ge=0, le=3650)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expiry(_Model):
    """When the points of a lot expire, counted from when they were earned."""

    policy: Literal["never", "months", "end_of_year"] = "never"
    months: int = Field(default=24, ge=1, le=120)  # policy "months"
    # policy "end_of_year": at the end of the calendar year this many years
    # after the year of earning (0: the same year)
    years: int = Field(default=1, ge=0, le=10)


class Pending(_Model):
    """Return windows: a purchase's points mature after the longest window
    that matches its channel or one of its categories (else ``default_days``)."""

    default_days: Days = 0
    channels: dict[Id, Days] = Field(default_factory=dict)
    categories: dict[Id, Days] = Field(default_factory=dict)


class Holds(_Model):
    default_minutes: int = Field(default=30, ge=1, le=10_080)
    max_minutes: int = Field(default=1_440, ge=1, le=10_080)

    @model_validator(mode="after")
    def _order(self) -> Holds:
        if self.default_minutes > self.max_minutes:
            raise ValueError("default_minutes: must be <= max_minutes")
        return self


class Multiplier(_Model):
    """Extra points on the base: ``factor`` x base, for purchases in a
    category or made through a channel."""

    id: Id
    category: Id | None = None
    channel: Id | None = None
    factor: Annotated[Decimal, Field(gt=1, le=100, decimal_places=4)]

    @model_validator(mode="after")
    def _one_filter(self) -> Multiplier:
        if (self.category is None) == (self.channel is None):
            raise ValueError("exactly one of category or channel must be set")
        return self


class Campaign(_Model):
    """A time-limited rule: a multiplier or a fixed bonus, optionally only
    for a category, a channel, or a share of members (A/B tests)."""

    id: Id
    starts: dt.datetime
    ends: dt.datetime
    factor: Annotated[Decimal, Field(gt=1, le=100, decimal_places=4)] | None = None
    bonus_points: int | None = Field(default=None, ge=1, le=1_000_000)
    category: Id | None = None
    channel: Id | None = None
    audience_percent: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _shape(self) -> Campaign:
        if (self.factor is None) == (self.bonus_points is None):
            raise ValueError("exactly one of factor or bonus_points must be set")
        if self.starts.tzinfo is None or self.ends.tzinfo is None:
            raise ValueError("starts/ends: must carry a UTC offset")
        if self.ends <= self.starts:
            raise ValueError("ends: must be after starts")
        return self


class FollowUp(_Model):
    """A bonus for a purchase made within ``within_hours`` after a
    purchase in ``after_category`` (e.g. accessories within 24 h of an
    appliance); optionally only when the later purchase is in ``category``."""

    id: Id
    after_category: Id
    within_hours: int = Field(ge=1, le=24 * 90)
    bonus_points: int = Field(ge=1, le=1_000_000)
    category: Id | None = None


class Earn(_Model):
    minor_per_unit: int = Field(default=100, ge=1, le=10_000)  # 100: cents
    # points per currency unit, by the member's tier ("none": no tier yet)
    base_rate: dict[Tier, Rate] = Field(default_factory=lambda: {"none": Decimal(1)})  # type: ignore[arg-type]
    multipliers: tuple[Multiplier, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    follow_ups: tuple[FollowUp, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Earn:
        if "none" not in self.base_rate:
            raise ValueError("base_rate: needs a rate for tier 'none'")
        ids = self.rule_ids()
        dupes = sorted({i for i in ids if ids.count(i) > 1} | ({"base", "referral"} & set(ids)))
        if dupes:
            raise ValueError(
                f"rule ids must be unique and not 'base' or 'referral': {', '.join(dupes)}"
            )
        return self

    def rule_ids(self) -> list[str]:
        return (
            [m.id for m in self.multipliers]
            + [c.id for c in self.campaigns]
            + [f.id for f in self.follow_ups]
        )


class Tiers(_Model):
    """The growth ladder (docs/program-rules.md): thresholds per tier."""

    grower_spend_units: int = Field(default=1_000, ge=1)
    active_purchases_per_month: int = Field(default=3, ge=1, le=1_000)
    active_months: int = Field(default=3, ge=1, le=24)  # averaged over this many months
    contributor_referrals: int = Field(default=1, ge=1, le=1_000)
    leader_spend_units: int = Field(default=10_000, ge=1)
    leader_referrals: int = Field(default=5, ge=1, le=1_000)
    review_days: int = Field(default=90, ge=1, le=3650)  # downgrades only at a review


class Referrals(_Model):
    reward_points: int = Field(default=500, ge=1, le=1_000_000)
    super_fan_chain: int = Field(default=5, ge=2, le=100)
    window_days: int = Field(default=30, ge=1, le=365)  # caps count per window
    max_per_referrer: int = Field(default=10, ge=1, le=10_000)
    max_per_device: int = Field(default=3, ge=1, le=10_000)
    # the referred member's first purchase worth at least this many currency
    # units triggers the reward (0: any purchase); a refund that brings it
    # below this while the reward is pending takes the reward back
    min_purchase_units: int = Field(default=0, ge=0, le=1_000_000)


class Partner(_Model):
    id: Id
    # points a member gets for one partner unit, and partner units a member
    # gets for one point (exchange out); either may be left out
    points_per_unit_in: Ratio | None = None
    units_per_point_out: Ratio | None = None


class Transfers(_Model):
    enabled: bool = True
    max_points: int = Field(default=100_000, ge=1)


ChannelId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class Reversals(_Model):
    """Which channels may reverse an entry another channel made (a return
    at a store of something bought in the app is normal retail; a channel
    reversing every other channel's sales is not). A channel may always
    reverse its own entries; ``cross_channel`` lists, per reversing
    channel, the channels whose entries it may reverse too ("*": any)."""

    cross_channel: dict[
        ChannelId, tuple[Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9._-]{0,63})$")], ...]
    ] = Field(default_factory=dict)

    def allows(self, channel: str, made_by: str) -> bool:
        if channel == made_by:
            return True
        allowed = self.cross_channel.get(channel, ())
        return "*" in allowed or made_by in allowed


class Reward(_Model):
    """A catalogue item members buy with points: each claim issues a voucher
    redeemable once, in any channel ``redeem_channels`` allows, until
    ``valid_days`` after it was issued (docs/program-rules.md §11)."""

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=80)]  # shown at the till
    points: int = Field(ge=1, le=10_000_000)
    stock: int | None = Field(default=None, ge=0, le=1_000_000_000)  # None: unlimited
    starts: dt.datetime | None = None  # offered from (None: always)
    ends: dt.datetime | None = None  # offered until (exclusive)
    valid_days: int = Field(default=30, ge=1, le=3650)
    claim_channels: tuple[ChannelId, ...] = ()  # who may sell it (empty: any channel)
    redeem_channels: tuple[ChannelId, ...] = ()  # who may honour it (empty: any channel)
    per_member: int | None = Field(default=None, ge=1, le=1_000_000)  # vouchers a member may hold

    @model_validator(mode="after")
    def _window(self) -> Reward:
        for when in (self.starts, self.ends):
            if when is not None and when.tzinfo is None:
                raise ValueError("starts/ends: must carry a UTC offset")
        if self.starts and self.ends and self.ends <= self.starts:
            raise ValueError("ends: must be after starts")
        return self

    def offered(self, now_us: int) -> bool:
        start = _us(self.starts) if self.starts else None
        end = _us(self.ends) if self.ends else None
        return (start is None or start <= now_us) and (end is None or now_us < end)


def _us(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000 + when.microsecond


class Program(_Model):
    version: Literal[1]
    program_id: Id = "default"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    expiry: Expiry = Expiry()
    pending: Pending = Pending()
    holds: Holds = Holds()
    earn: Earn = Earn()
    tiers: Tiers = Tiers()
    referrals: Referrals = Referrals()
    transfers: Transfers = Transfers()
    reversals: Reversals = Reversals()
    partners: tuple[Partner, ...] = ()
    rewards: tuple[Reward, ...] = ()

    @model_validator(mode="after")
    def _partners(self) -> Program:
        ids = [p.id for p in self.partners]
        if len(ids) != len(set(ids)):
            raise ValueError("partners: ids must be unique")
        rewards = [r.id for r in self.rewards]
        if len(rewards) != len(set(rewards)):
            raise ValueError("rewards: ids must be unique")
        return self

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)

    def partner(self, partner_id: str) -> Partner | None:
        return next((p for p in self.partners if p.id == partner_id), None)


DEFAULT_PROGRAM = Program(version=1)


class ProgramError(ValueError):
    """The program file is not valid; the message lists every problem."""


def parse_program(data: dict[str, object]) -> Program:
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
        raise ProgramError("program file: " + "; ".join(lines)) from None


def load_program(path: Path) -> Program:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ProgramError(f"program file: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProgramError(f"program file: not valid TOML: {exc}") from None
    return parse_program(data)
