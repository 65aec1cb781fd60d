"""Server interceptor: request id, one structured log line per call, and the
single conversion of ledger errors into gRPC statuses.

Handlers return responses or raise ``LedgerError``; they never set status
codes themselves. Anything else they raise becomes INTERNAL with a generic
message (the details go to the log, not to the caller).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import structlog

from ledger.errors import LedgerError, ValidationError
from ledger.service.status import internal_status, to_status

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNDECODABLE = object()


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
            return value
    return uuid.uuid4().hex


class CallObserver(grpc.ServerInterceptor):
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        behavior = handler.unary_unary
        deserialize = handler.request_deserializer

        def lenient_deserialize(data: bytes) -> Any:
            # grpc answers INTERNAL when a deserializer raises; bad bytes are
            # the caller's fault, so hand the handler a marker instead
            try:
                return deserialize(data) if deserialize else data
            except Exception:
                return _UNDECODABLE

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            request_id = _request_id(context)
            context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
            started = time.perf_counter()
            with structlog.contextvars.bound_contextvars(request_id=request_id, method=method):
                try:
                    if request is _UNDECODABLE:
                        raise ValidationError("request", "is not a valid serialized message")
                    response = behavior(request, context)
                except LedgerError as err:
                    status = to_status(err)
                except Exception:
                    log.exception("handler_crashed")
                    status = internal_status()
                else:
                    _log_call(started, grpc.StatusCode.OK)
                    return response
                _log_call(started, status.code)
            context.abort_with_status(status)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=lenient_deserialize,
            response_serializer=handler.response_serializer,
        )


def _log_call(started: float, code: grpc.StatusCode) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    log.info("rpc", status=code.name, duration_ms=duration_ms)
