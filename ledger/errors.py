"""One error tree for the ledger.

Every error names the field or the rule, never the value a caller sent
(values may be personal data). ``ledger/service/status.py`` maps each family
to a gRPC status code in exactly one place.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""


class ValidationError(LedgerError):
    """A request field breaks a rule (INVALID_ARGUMENT)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFoundError(LedgerError):
    """An account or entry does not exist (NOT_FOUND)."""


class MemberErasedError(NotFoundError):
    """The member was erased: their personal data no longer exists (NOT_FOUND)."""

    def __init__(self) -> None:
        super().__init__("member_account_id: the member was erased")


class IntegrityError(LedgerError):
    """Stored data failed an integrity check, e.g. a ciphertext that does not
    decrypt (DATA_LOSS). Names what failed, never the data."""


class ConflictError(LedgerError):
    """The request conflicts with one already recorded (ALREADY_EXISTS)."""


class IdempotencyConflictError(ConflictError):
    def __init__(self) -> None:
        super().__init__("idempotency_key: already used by this channel for a different request")


class PreconditionError(LedgerError):
    """The ledger's state does not allow the operation (FAILED_PRECONDITION)."""

    reason = "PRECONDITION_FAILED"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.metadata = metadata or {}


class HoldEndedError(PreconditionError):
    """The member's hold was captured, released or timed out already (the
    loser of a capture/release race learns which entry ended it)."""

    reason = "HOLD_ENDED"

    def __init__(self, hold_sequence: int, ended_by: int) -> None:
        super().__init__(
            "hold_sequence: the hold has already ended (captured, released or timed out; "
            "see ended_by_sequence in ErrorInfo)",
            metadata={"hold_sequence": str(hold_sequence), "ended_by_sequence": str(ended_by)},
        )


class VoucherEndedError(PreconditionError):
    """The voucher was redeemed, expired or cancelled already (the loser of
    a race between two tills learns which entry ended it)."""

    reason = "VOUCHER_ENDED"

    def __init__(self, state: str, ended_by: int) -> None:
        super().__init__(
            f"code: the voucher was {state} already (see ended_by_sequence in ErrorInfo)",
            metadata={"state": state, "ended_by_sequence": str(ended_by)},
        )


class RewardUnavailableError(PreconditionError):
    """A reward that cannot be claimed now: out of stock, not offered, not
    through this channel, or the member holds as many as allowed."""

    def __init__(self, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class InsufficientPointsError(PreconditionError):
    reason = "INSUFFICIENT_POINTS"

    def __init__(self, *, available: int, requested: int) -> None:
        super().__init__(
            "points: insufficient points (see the available balance in ErrorInfo)",
            metadata={"available": str(available), "requested": str(requested)},
        )
        self.available = available
        self.requested = requested


class NotReversibleError(PreconditionError):
    reason = "NOT_REVERSIBLE"


class ReferralRefusedError(PreconditionError):
    """A referral the anti-abuse rules refuse; ``reason`` is its code."""

    def __init__(self, code: str, explanation: str) -> None:
        super().__init__(f"referral refused: {explanation}", metadata={"refusal": code})
        self.reason = code


class AccountClosedError(PreconditionError):
    reason = "ACCOUNT_CLOSED"

    def __init__(self, field: str = "member_account_id") -> None:
        super().__init__(f"{field}: the member was erased; the account is closed")


class ReversalNotAllowedError(LedgerError):
    """The program's reversal policy does not let this channel reverse an
    entry another channel made (PERMISSION_DENIED)."""

    def __init__(self, channel: str, made_by: str) -> None:
        super().__init__(
            f"original_sequence: channel {channel} may not reverse entries made by channel"
            f" {made_by} (program file: [reversals] cross_channel)"
        )


class UnavailableError(LedgerError):
    """The ledger cannot take the request now; retrying later may work (UNAVAILABLE)."""


class ProfileChangedError(UnavailableError):
    """A member's fields or data key changed between sealing a profile write
    and applying it; the caller seals again (UNAVAILABLE if it gives up)."""

    def __init__(self) -> None:
        super().__init__(
            "member_account_id: the member's fields or data key changed meanwhile; retry"
        )
