"""The one place where ledger errors become gRPC statuses.

INVALID_ARGUMENT carries google.rpc.BadRequest (field + rule);
FAILED_PRECONDITION carries google.rpc.ErrorInfo (reason + metadata such as
the available balance); every status carries the plain message too. No
message contains a value the caller sent.
"""

from __future__ import annotations

import datetime

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from access.detectors import PersonalDataFound, TooLongToScan
from access.errors import (
    AccessError,
    AccessRequestError,
    AuthenticationError,
    PermissionDeniedError,
)
from access.ratelimit import RateLimitedError
from ledger import metrics
from ledger.errors import (
    ConflictError,
    IntegrityError,
    LedgerError,
    NotFoundError,
    PreconditionError,
    ReversalNotAllowedError,
    UnavailableError,
    ValidationError,
)

DOMAIN = "loyalty.ledger.v1"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _bad_request(field: str, rule: str) -> any_pb2.Any:
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=rule)
    return _pack(error_details_pb2.BadRequest(field_violations=[violation]))


def to_status(err: LedgerError | AccessError) -> grpc.Status:
    details: list[any_pb2.Any] = []
    if isinstance(err, PersonalDataFound | TooLongToScan):
        metrics.refused("personal_data")
    elif isinstance(err, RateLimitedError):
        metrics.refused("rate_limited")
    if isinstance(err, PersonalDataFound | TooLongToScan | AccessRequestError):
        code = code_pb2.INVALID_ARGUMENT
        details.append(_bad_request(err.field, err.rule))
    elif isinstance(err, RateLimitedError):
        code = code_pb2.RESOURCE_EXHAUSTED
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=err.retry_after))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    elif isinstance(err, AuthenticationError):
        code = code_pb2.UNAUTHENTICATED
    elif isinstance(err, PermissionDeniedError | ReversalNotAllowedError):
        code = code_pb2.PERMISSION_DENIED
    elif isinstance(err, ValidationError):
        code = code_pb2.INVALID_ARGUMENT
        details.append(_bad_request(err.field, err.rule))
    elif isinstance(err, NotFoundError):
        code = code_pb2.NOT_FOUND
    elif isinstance(err, ConflictError):
        code = code_pb2.ALREADY_EXISTS
    elif isinstance(err, PreconditionError):
        code = code_pb2.FAILED_PRECONDITION
        details.append(
            _pack(
                error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
            )
        )
    elif isinstance(err, IntegrityError):
        code = code_pb2.DATA_LOSS
    elif isinstance(err, UnavailableError):
        code = code_pb2.UNAVAILABLE
    else:
        code = code_pb2.INTERNAL
    return rpc_status.to_status(status_pb2.Status(code=code, message=str(err), details=details))


def internal_status() -> grpc.Status:
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see server logs")
    )
