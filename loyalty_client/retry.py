"""When and how long to wait before trying a call again.

Only three codes are retried: UNAVAILABLE (the ledger or its database is
down for a moment), DEADLINE_EXCEEDED (no answer in time: the call may have
been applied, and its idempotency key makes the retry safe) and
RESOURCE_EXHAUSTED (rate-limited: after the server's RetryInfo delay).
Everything else is an answer, not a failure to get one, and is raised at
once. Backoff is exponential with full jitter, bounded by attempts and by
a total time."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

from loyalty_client.errors import LedgerError

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5  # the first call included; 1: never retry
    initial_backoff: float = 0.1  # seconds
    max_backoff: float = 5.0
    multiplier: float = 2.0
    total_timeout: float = 30.0  # give up once this much time has passed

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts: must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoff: 0 <= initial_backoff <= max_backoff")

    def retryable(self, err: LedgerError) -> bool:
        return err.code in RETRYABLE

    def delay(self, attempt: int, err: LedgerError, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based):
        the server's RetryInfo when it sent one (in full: sooner would only
        be refused again; a delay past ``total_timeout`` makes the caller
        give up instead), else full jitter over an exponential backoff."""
        if err.retry_delay is not None and err.retry_delay > 0:
            return err.retry_delay
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return (rng or random).uniform(0, cap)


NO_RETRY = RetryPolicy(max_attempts=1)
