"""Access decisions, as the access layer hands them to the audit layer.

One record per decision, allowed or denied. It holds no personal data:
principal and member are ids, fields are field names. ``DecisionSink`` is
the one interface; the ledger's sink (its appender) appends each decision
to the access log, a hash-chained Merkle log (audit/access_format.py), and
returns only once the record is durable, so a caller can refuse to answer
when it cannot be written (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AccessDecision:
    time_us: int  # microseconds since the Unix epoch
    request_id: str
    principal: str  # principal id; "" when the server runs without authentication
    role: str
    method: str  # full gRPC method name
    decision: str  # "allow" or "deny"
    reason: str = ""  # for a denial: the check or rule that failed
    purpose: str = ""  # declared purpose of a personal-data read
    member_account_id: str = ""
    fields: str = ""  # comma-separated names of the personal fields returned


class DecisionSink(Protocol):
    async def record(self, decision: AccessDecision) -> None:
        """Return once ``decision`` is durable in the access log; raise if it
        cannot be written."""
        ...
