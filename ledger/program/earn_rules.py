"""Computed earns: the points a purchase is worth under the program's earn
rules, one component per rule that applied (docs/program-rules.md).

Each component becomes one posting from ``program:issued:<rule id>`` into
the member's new lot, so the journal itself says why the member got what
they got, and finance sees what each rule and campaign cost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal

from audit.accounts import ISSUED_PREFIX
from ledger.errors import ValidationError
from ledger.program.config import Program

BASE_RULE = "base"
REFERRAL_RULE = "referral"  # the referrer's reward (program file: [referrals])
_HOUR_US = 3_600 * 1_000_000


def issued_account(rule: str) -> str:
    return f"{ISSUED_PREFIX}:{rule}"


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def audience_bucket(member: str, campaign_id: str) -> int:
    """0..99, stable per (member, campaign): who is in an A/B campaign's
    audience. A hash of the random account id: no personal data."""
    digest = hashlib.sha256(f"{campaign_id}\x00{member}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def compute_earn(
    program: Program,
    *,
    purchase_minor: int,
    currency: str,
    categories: tuple[str, ...],
    channel_id: str,
    member: str,
    tier: str,
    recent: Mapping[str, int],
    when_us: int,
) -> tuple[tuple[str, int], ...]:
    """(rule id, points) for every rule that gives this purchase points,
    base first; ValidationError when the purchase cannot earn (no purchase,
    another currency, or nothing at all)."""
    if not currency:
        raise ValidationError(
            "points", "must be > 0 unless a purchase is sent for the program to price"
        )
    if purchase_minor <= 0:
        raise ValidationError("purchase.minor_units", "must be > 0 for the program to price it")
    if currency != program.currency:
        raise ValidationError(
            "purchase.currency_code", "must be the program's currency to compute points"
        )
    rules = program.earn
    rate = rules.base_rate.get(tier, rules.base_rate["none"])  # type: ignore[call-overload]
    units = Decimal(purchase_minor) / rules.minor_per_unit
    base = _floor(units * rate)
    out: list[tuple[str, int]] = [(BASE_RULE, base)] if base > 0 else []
    for m in rules.multipliers:
        if (m.category and m.category in categories) or (m.channel and m.channel == channel_id):
            out.append((m.id, _floor(base * (m.factor - 1))))
    moment = dt.datetime.fromtimestamp(when_us / 1_000_000, tz=dt.UTC)
    for c in rules.campaigns:
        if not c.starts <= moment < c.ends:
            continue
        if c.category and c.category not in categories:
            continue
        if c.channel and c.channel != channel_id:
            continue
        if audience_bucket(member, c.id) >= c.audience_percent:
            continue
        if c.bonus_points is not None:
            points = c.bonus_points
        else:
            assert c.factor is not None  # the model requires one of the two
            points = _floor(base * (c.factor - 1))
        out.append((c.id, points))
    for f in rules.follow_ups:
        last = recent.get(f.after_category)
        if last is None or not 0 <= when_us - last <= f.within_hours * _HOUR_US:
            continue
        if f.category and f.category not in categories:
            continue
        out.append((f.id, f.bonus_points))
    found = tuple((rule, n) for rule, n in out if n > 0)
    if not found:
        raise ValidationError("purchase", "earns no points under the program's rules")
    return found
