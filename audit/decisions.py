"""Access decisions, as the access layer hands them to the audit layer.

One record per decision, allowed or denied. It holds no personal data:
principal and member are ids, fields are field names. ``DecisionSink`` is
the one interface; the ledger's sink appends to the append-only
``access_decisions`` table. Issue #5 turns that table into a verifiable
Merkle log written in the same transaction as the operation (fail closed);
until then records are written in batches shortly after the decision.
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
    purpose: str = ""  # declared purpose of a personal-data read (issue #3, later)
    member_account_id: str = ""
    fields: str = ""  # comma-separated names of the personal fields returned


class DecisionSink(Protocol):
    def record(self, decision: AccessDecision) -> None: ...
