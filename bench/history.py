"""A realistic program history as import lines (docs/bulk-import.md).

Members as a program has them, for the example program
(examples/program.toml: tiers, end-of-year expiry, a return window,
channel multipliers): purchases priced by the earn rules, four channels
(store till 60 %, app 25 %, mini-program 10 %, partner 5 %), one
redemption in six, two years of history with November and December twice
as busy as other months, and about one new member per 20 operations, so
members gather lots. Deterministic for a seed; resumable from any count.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

CHANNELS = (("bench-pos", 60), ("app", 25), ("mini", 10), ("partner-cinema", 5))
CATEGORIES = ("grocery", "fresh", "apparel", "electronics", "coffee")
DAY_US = 86_400_000_000
SPAN_DAYS = 730
MEMBER_EVERY = 20


def _stamp(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def _season(end_us: int) -> list[tuple[float, int]]:
    """(cumulative share of the operations, day start) over the two years;
    November and December days weigh twice as much as others."""
    start = end_us - SPAN_DAYS * DAY_US
    weights = []
    for day in range(SPAN_DAYS):
        month = time.gmtime((start + day * DAY_US) // 1_000_000).tm_mon
        weights.append(2.0 if month in (11, 12) else 1.0)
    total, acc, out = sum(weights), 0.0, []
    for day, w in enumerate(weights):
        out.append((acc / total, start + day * DAY_US))
        acc += w
    return out


def lines(
    count: int, *, first: int = 0, total: int, end_us: int, seed: int = 7, tag: str = "hist"
) -> Iterator[str]:
    """Operations ``first`` .. ``first + count - 1`` of a history of
    ``total`` operations over the two years before ``end_us``, in time
    order; member ``alias:m<N>`` is opened just before the operation that
    first may use it."""
    rng = random.Random(seed * 1_000_003 + first)
    season = _season(end_us)
    shares = [share for share, _ in season]
    weights = [w for _, w in CHANNELS]
    day = 0
    for n in range(first, first + count):
        u = n / max(total, 1)
        while day + 1 < len(season) and shares[day + 1] <= u:
            day += 1
        next_share = shares[day + 1] if day + 1 < len(season) else 1.0
        within = (u - shares[day]) / max(next_share - shares[day], 1e-12)
        when = season[day][1] + int(within * DAY_US)
        members = n // MEMBER_EVERY + 1
        if n % MEMBER_EVERY == 0:
            yield json.dumps(
                {
                    "open_account": {
                        "idempotency_key": f"{tag}-open-{members:010d}",
                        "context": {"channel_id": "bench-pos"},
                    },
                    "alias": f"m{members}",
                }
            )
        channel = rng.choices(CHANNELS, weights)[0][0]
        context = {"channel_id": channel, "store_id": f"store-{rng.randrange(300):04d}"}
        member = f"alias:m{rng.randint(1, members)}"
        key = f"{tag}-{n:012d}"
        if rng.random() < 1 / 6:
            op = {
                "redeem": {
                    "idempotency_key": key,
                    "context": context,
                    "member_account_id": member,
                    "points": rng.choice((50, 100, 200)),
                }
            }
        else:
            op = {
                "earn": {
                    "idempotency_key": key,
                    "context": context,
                    "member_account_id": member,
                    "purchase": {
                        "minor_units": rng.randrange(500, 60_000),
                        "currency_code": "CNY",
                    },
                    "categories": [rng.choice(CATEGORIES)],
                }
            }
        yield json.dumps({"occurred_at": _stamp(when), **op})
