"""Typed exceptions for the ledger's status codes, carrying what the server
put in ``google.rpc.Status`` details: the field and rule of a BadRequest,
the reason and metadata of an ErrorInfo, the delay of a RetryInfo."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str  # e.g. "points", "items[3].occurred_at"
    description: str  # the rule, never the value


class LedgerError(Exception):
    """A call the ledger answered with a non-OK status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        violations: tuple[FieldViolation, ...] = (),
        reason: str = "",
        metadata: dict[str, str] | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.violations = violations
        self.reason = reason  # ErrorInfo.reason, e.g. INSUFFICIENT_POINTS
        self.metadata = dict(metadata or {})  # ErrorInfo.metadata, e.g. available
        self.retry_delay = retry_delay  # RetryInfo, seconds

    @property
    def field(self) -> str:
        """The first violated field ("" when the error names none)."""
        return self.violations[0].field if self.violations else ""


class InvalidArgument(LedgerError):
    pass


class NotFound(LedgerError):
    pass


class PermissionDenied(LedgerError):
    pass


class Unauthenticated(LedgerError):
    pass


class FailedPrecondition(LedgerError):
    """E.g. insufficient points (``metadata["available"]``), a hold that ended."""


class Conflict(LedgerError):
    """ALREADY_EXISTS: the idempotency key was already used for a different
    request (a replay of the same request is not an error: it returns the
    first result)."""


AlreadyExists = Conflict


class ResourceExhausted(LedgerError):
    """Rate-limited: retried by the client after ``retry_delay``."""


class Unavailable(LedgerError):
    """The ledger (or its database) cannot be reached now: retried."""


class DeadlineExceeded(LedgerError):
    """No answer in time: the call may have been applied; retried with its key."""


_BY_CODE: dict[grpc.StatusCode, type[LedgerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(err: grpc.RpcError) -> LedgerError:
    """The typed exception of a failed call, its details decoded."""
    code: grpc.StatusCode = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message: str = (err.details() if hasattr(err, "details") else "") or ""
    violations: list[FieldViolation] = []
    reason, metadata, delay = "", {}, None
    status = None
    try:
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except (ValueError, AttributeError):  # a status without details, or a mismatch
        status = None
    for detail in status.details if status is not None else ():
        bad = error_details_pb2.BadRequest()
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        if detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(retry.DESCRIPTOR):
            detail.Unpack(retry)
            delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    kind = _BY_CODE.get(code, LedgerError)
    return kind(
        code,
        message,
        violations=tuple(violations),
        reason=reason,
        metadata=metadata,
        retry_delay=delay,
    )
