"""Abuse limits: token buckets per principal and per member.

Each key (a principal id, a member account id) has a bucket that holds up
to ``burst`` calls and refills at ``per_second``. A call takes one token; a
call that finds the bucket empty is refused with the time until a token is
back (RESOURCE_EXHAUSTED with google.rpc.RetryInfo). Buckets live in memory,
per server process, bounded to ``max_keys`` (the least recently used are
dropped; a dropped bucket comes back full, which only ever errs towards
allowing). With several worker processes the buckets are shared by
all of them (access/shared_buckets.py). Against scripted redemptions and fake orders, the per-member
limit is the one that matters: it holds whichever channel the calls come
from.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from access.errors import AccessError
from access.permissions import LOOKUP_METHODS, MUTATING_METHODS
from access.shared_buckets import SharedBuckets

Clock = Callable[[], float]  # seconds, monotonic


class RateLimitedError(AccessError):
    """Too many calls for one key (RESOURCE_EXHAUSTED)."""

    def __init__(self, scope: str, retry_after: float) -> None:
        super().__init__(f"{scope}: too many calls; retry after {retry_after:.3f} s")
        self.scope = scope
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float  # sustained calls per second; 0 disables the limit
    burst: int  # calls allowed at once


# a till looks up a member once per sale, not hundreds of times a minute
DEFAULT_LOOKUP_RATE = Rate(2, 30)


class RateLimiter:
    """Buckets in this process, or with ``shared`` in the table all worker
    processes of a server share (access/shared_buckets.py)."""

    def __init__(
        self,
        rate: Rate,
        *,
        scope: str,
        clock: Clock = time.monotonic,
        max_keys: int = 200_000,
        shared: SharedBuckets | None = None,
    ) -> None:
        self._rate = rate
        self._scope = scope
        self._clock = clock
        self._max_keys = max_keys
        self._shared = shared
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self._rate.per_second > 0

    def take(self, key: str) -> None:
        """Spend one call for ``key`` or raise RateLimitedError."""
        if not self.enabled:
            return
        now = self._clock()
        if self._shared is not None:
            refused: list[float] = []
            self._shared.update(
                self._shared.digest(self._scope, key), lambda t, a: self._spend(t, a, now, refused)
            )
            if refused:
                raise RateLimitedError(self._scope, refused[0])
            return
        tokens, at = self._buckets.pop(key, (float(self._rate.burst), now))
        tokens = min(float(self._rate.burst), tokens + (now - at) * self._rate.per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimitedError(self._scope, (1.0 - tokens) / self._rate.per_second)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def _spend(
        self, tokens: float | None, at: float, now: float, refused: list[float]
    ) -> tuple[float, float, float]:
        """A shared bucket after one call: (tokens, now, when it is full
        again). A refusal is stored too (the refill so far, and now), and
        noted in ``refused`` with the wait until a token is back."""
        burst, rate = float(self._rate.burst), self._rate.per_second
        tokens = burst if tokens is None else min(burst, tokens + (now - at) * rate)
        if tokens < 1.0:
            refused.append((1.0 - tokens) / rate)
        else:
            tokens -= 1.0
        return tokens, now, now + (burst - tokens) / rate


class CallLimits:
    """The limits the server applies, in one place: mutating calls per
    principal and per member; lookups (find a member by phone or e-mail)
    per principal, so nobody can sweep phone numbers to map members."""

    def __init__(
        self,
        *,
        per_principal: Rate,
        per_member: Rate,
        lookups: Rate = DEFAULT_LOOKUP_RATE,
        clock: Clock = time.monotonic,
        shared: SharedBuckets | None = None,
    ) -> None:
        self._principals = RateLimiter(per_principal, scope="principal", clock=clock, shared=shared)
        self._members = RateLimiter(
            per_member, scope="member_account_id", clock=clock, shared=shared
        )
        self._lookups = RateLimiter(
            lookups, scope="lookups of principal", clock=clock, shared=shared
        )

    def check(self, method: str, principal_key: str, member: str, more: Sequence[str] = ()) -> None:
        """Spend one call of ``principal_key`` and of ``member`` (when the
        request names one) if ``method`` changes the journal; one lookup of
        ``principal_key`` if it looks a member up. ``more``: the members of a
        batch call's further operations (ReplayOffline), one call each."""
        if method in LOOKUP_METHODS:
            self._lookups.take(principal_key or "anonymous")
            return
        if method not in MUTATING_METHODS:
            return
        for one in (member, *more) if more else (member,):
            if principal_key:
                self._principals.take(principal_key)
            if one:
                self._members.take(one)


def parse_rate(text: str) -> Rate:
    """'20:100' is 20 calls per second with bursts of 100; '0' turns it off."""
    per_second, _, burst = text.partition(":")
    rate = Rate(float(per_second), int(burst or max(1, round(float(per_second)))))
    if rate.per_second < 0 or rate.burst < 0:
        raise ValueError("rate: must be PER_SECOND[:BURST] with non-negative numbers")
    return rate
