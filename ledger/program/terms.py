"""When a lot matures and expires: pure functions of the program file and
the time the points were earned (docs/program-rules.md)."""

from __future__ import annotations

import calendar
import datetime as dt

from ledger.program.config import Program

_DAY_US = 86_400 * 1_000_000


def _utc(time_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_us / 1_000_000, tz=dt.UTC)


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def add_months(time_us: int, months: int) -> int:
    """The same day and time ``months`` calendar months later (the last
    day of the month when that month is shorter)."""
    moment = _utc(time_us)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return _us(moment.replace(year=year, month=month, day=day))


def expires_us(program: Program, earned_us: int) -> int:
    """When points earned at ``earned_us`` expire; 0 for never."""
    rule = program.expiry
    if rule.policy == "never":
        return 0
    if rule.policy == "months":
        return add_months(earned_us, rule.months)
    year = _utc(earned_us).year + rule.years
    return _us(dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC))  # the first instant after that year


def return_window_days(program: Program, channel_id: str, categories: tuple[str, ...]) -> int:
    """The longest return window matching the purchase's channel or one of
    its categories, else the default."""
    rule = program.pending
    matches = [rule.channels[channel_id]] if channel_id in rule.channels else []
    matches += [rule.categories[c] for c in categories if c in rule.categories]
    return max(matches) if matches else rule.default_days


def matures_us(
    program: Program, earned_us: int, channel_id: str, categories: tuple[str, ...]
) -> int:
    """When a purchase's points become available; 0 when at once."""
    days = return_window_days(program, channel_id, categories)
    return earned_us + days * _DAY_US if days else 0


def month_of(time_us: int) -> str:
    """'YYYY-MM' (UTC) of a time, for the liability view."""
    return _utc(time_us).strftime("%Y-%m")
