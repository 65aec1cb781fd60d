"""Server interceptor (grpc.aio): request id, one structured log line per
call, and the single conversion of ledger errors into gRPC statuses.

Handlers return responses or raise ``LedgerError``; they never set status
codes themselves. Anything else they raise becomes INTERNAL with a generic
message (the details go to the log, not to the caller). The request id
(``x-request-id`` from the caller, or a fresh one) goes back in the
trailing metadata, which travels with the status at no extra cost.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import structlog

from ledger.errors import LedgerError, ValidationError
from ledger.service.status import internal_status, to_status

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNDECODABLE = object()


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
            return value
    return os.urandom(8).hex()


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """grpc answers INTERNAL when a deserializer raises; bad bytes are the
    caller's fault, so hand the handler a marker instead."""

    def deserializer(data: bytes) -> Any:
        try:
            return deserialize(data) if deserialize else data
        except Exception:
            return _UNDECODABLE

    return deserializer


class CallObserver(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        # wrapped handlers by method: a method's handler never changes, and
        # building the wrapper on every call costs measurable time
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = wrapped
        return wrapped

    @staticmethod
    def _wrap(
        method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        # an aio server's handlers are coroutine functions
        behavior = cast(Callable[[Any, Any], Awaitable[Any]], handler.unary_unary)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id = _request_id(context.invocation_metadata())
            started = time.perf_counter()
            try:
                if request is _UNDECODABLE:
                    raise ValidationError("request", "is not a valid serialized message")
                response = await behavior(request, context)
            except LedgerError as err:
                status = to_status(err)
            except Exception:
                log.exception("handler_crashed", request_id=request_id, method=method)
                status = internal_status()
            else:
                context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
                _log_call(request_id, method, started, grpc.StatusCode.OK)
                return response
            _log_call(request_id, method, started, status.code)
            trailing = (*status.trailing_metadata, (REQUEST_ID_HEADER, request_id))
            await context.abort(status.code, status.details, trailing)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


def _log_call(request_id: str, method: str, started: float, code: grpc.StatusCode) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    log.info("rpc", request_id=request_id, method=method, status=code.name, duration_ms=duration_ms)
