"""Errors of the access layer: one root, grouped by what failed.

Messages name the check or the rule that failed, never a credential or a
personal value. The ledger maps them to gRPC statuses in its one mapping
(UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT).
"""

from __future__ import annotations


class AccessError(Exception):
    """Root of every error the access layer raises on purpose."""


class AuthenticationError(AccessError):
    """The caller's credentials failed a check (UNAUTHENTICATED)."""

    def __init__(self, check: str, rule: str, *, subject: str = "", token_id: str = "") -> None:
        super().__init__(f"{check}: {rule}")
        self.check = check
        self.rule = rule
        # a credential this server did sign (its signature verified) but
        # refuses (expired, revoked, not yet valid): whose it claims to be,
        # for the access log, marked unverified. Never set for a token
        # whose signature fails: anyone can write any subject into one.
        self.subject = subject
        self.token_id = token_id


class PermissionDeniedError(AccessError):
    """An authenticated principal may not do this (PERMISSION_DENIED)."""


class AccessRequestError(AccessError):
    """A request names something the access layer does not know, e.g. an
    unknown purpose (INVALID_ARGUMENT, with the field and the rule)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
