"""The wrapper every ledger call passes through (grpc.aio): request id, one
structured log line per call, and the single conversion of ledger errors
into gRPC statuses.

Handlers return responses or raise ``LedgerError``; they never set status
codes themselves. Anything else they raise becomes INTERNAL with a generic
message (the details go to the log, not to the caller). The request id
(``x-request-id`` from the caller, or a fresh one) goes back in the
trailing metadata of every error, so support can find the log line; the
log line of every call carries it.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import structlog

from access.detectors import scan
from access.errors import AccessError, AuthenticationError
from access.gate import Gate, batch_operations, unauthenticated_scope
from access.principal import Principal
from access.ratelimit import CallLimits, Rate, RateLimitedError, RateLimiter
from access.scope import CallScope
from access.scope import enter as enter_scope
from access.tokens import UNVERIFIED_PREFIX
from audit.decisions import AccessDecision, DecisionSink
from ledger import metrics
from ledger.errors import LedgerError, ValidationError
from ledger.logging import CALLS
from ledger.service.status import internal_status, to_status
from ledger.validation import MEMBER_ACCOUNT_RE

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNDECODABLE = object()


_ID_PREFIX = os.urandom(5).hex()  # per process; ids are prefix + a counter
_ids = itertools.count(1)


def _request_id(metadata: Any) -> str:
    """The caller's x-request-id if well-formed, else one of ours. It is
    written into the access log, which is append-only and hashed forever,
    so one the detectors take for personal data (a phone number as a
    request id) is replaced, not stored (logged with the detector's name)."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
            found = scan(value, field=REQUEST_ID_HEADER)
            if not found:
                return value
            replaced = f"{_ID_PREFIX}{next(_ids):06x}"
            log.warning(
                "request_id_replaced",
                request_id=replaced,
                detectors=[f.detector for f in found],
            )
            return replaced
    return f"{_ID_PREFIX}{next(_ids):06x}"


def _caller_key(principal: Principal | None, request: Any) -> str:
    """Who to count a call against: the principal, or without authentication
    the channel the request says it comes from."""
    if principal is not None:
        return principal.id
    return str(getattr(getattr(request, "context", None), "channel_id", ""))


def _member(request: Any) -> str:
    """The member account a request names, if it is a well-formed id (the
    raw field is caller input: never recorded unvalidated)."""
    value = getattr(request, "member_account_id", "")
    return value if isinstance(value, str) and MEMBER_ACCOUNT_RE.fullmatch(value) else ""


def _item_members(request: Any) -> list[str]:
    """The members of each operation of a batch request (ReplayOffline),
    well-formed ids or "" (so every item counts against the caller)."""
    return [_member(op) if op is not None else "" for op in batch_operations(request)]


def _peer_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
    """The client certificate the TLS layer verified, if any (mTLS)."""
    certs = list(context.auth_context().get("x509_pem_cert", ()))
    return bytes(certs[0]) if certs else None


def _undecodable() -> ValidationError:
    return ValidationError("request", "is not a valid serialized message")


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """grpc answers INTERNAL when a deserializer raises; bad bytes are the
    caller's fault, so hand the handler a marker instead."""

    def deserializer(data: bytes) -> Any:
        try:
            return deserialize(data) if deserialize else data
        except Exception:
            return _UNDECODABLE

    return deserializer


def observe_service(
    server: grpc.aio.Server,
    add_to_server: Callable[[Any, Any], None],
    servicer: Any,
    *,
    checks: Checks,
) -> None:
    """Register ``servicer`` with every unary method wrapped by ``observe``.

    ``add_to_server`` is the generated ``add_XServicer_to_server``. The
    wrapping is done once, at registration, rather than by a
    ``grpc.aio.ServerInterceptor``, which runs an extra coroutine per call:
    on a GIL-bound server that was a measurable share of every call. This
    is the one place calls pass through before their handler: with a
    ``checks.gate``, every call is authenticated and authorized there first
    (no gate is the development mode without credentials).
    """
    add_to_server(servicer, _WrappingRegistrar(server, checks))


class _WrappingRegistrar:
    """Stands in for the server while generated code registers handlers."""

    def __init__(self, server: grpc.aio.Server, checks: Checks) -> None:
        self._server = server
        self._checks = checks

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # registered, wrapped, by add_registered_method_handlers below

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        wrapped = {
            name: observe(f"/{service}/{name}", handler, self._checks)
            if handler.unary_unary
            else observe_stream(f"/{service}/{name}", handler, self._checks)
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, wrapped),)
        )
        self._server.add_registered_method_handlers(service, wrapped)


class _Denied(Exception):
    """The gate refused the call (carries the scope known so far)."""

    def __init__(self, error: AccessError, scope: CallScope) -> None:
        super().__init__(str(error))
        self.error = error
        self.scope = scope


ANONYMOUS_DENIALS = Rate(5, 20)  # recorded denials per peer without credentials


@dataclass(frozen=True, slots=True)
class Checks:
    """What runs before a handler: the gate (authentication, authorization,
    channel binding, purpose), abuse limits, and where each decision is
    recorded. One record per call, and no response without its record: a
    denial is recorded before the error is sent; a read's admission after
    the handler and before the response leaves, naming the purpose and the
    personal fields in it; a mutation's admission is handed to the
    appender with the command (``take_pending_record``) and written in the
    same transaction. If a record cannot be written the call fails
    (UNAVAILABLE): fail closed."""

    gate: Gate | None = None
    limits: CallLimits | None = None
    decisions: DecisionSink | None = None
    # denials of calls without valid credentials are recorded one by one up
    # to this rate per peer address; beyond it they are counted and recorded
    # as one summary a second, so nobody can grow the permanent log at will
    anonymous: RateLimiter = field(
        default_factory=lambda: RateLimiter(ANONYMOUS_DENIALS, scope="peer")
    )
    suppressed: Counter[str] = field(default_factory=Counter)  # method -> unrecorded denials

    def admit(
        self,
        method: str,
        request_id: str,
        metadata: Any,
        request: Any,
        peer: bytes | Callable[[], bytes | None] | None,
    ) -> CallScope:
        """The call's scope, or _Denied."""
        scope = CallScope(None)
        try:
            if self.gate is not None:
                principal = self.gate.authenticate(metadata, peer)
                scope = CallScope(principal)
                scope = self.gate.authorize(principal, method, request)
            elif request is not _UNDECODABLE:
                scope = unauthenticated_scope(method, request)
            if self.limits is not None and request is not _UNDECODABLE:
                self.limits.check(
                    method,
                    _caller_key(scope.principal, request),
                    _member(request),
                    _item_members(request),
                )
        except AccessError as err:
            raise _Denied(err, scope) from None
        return scope

    def decision(
        self,
        method: str,
        request_id: str,
        scope: CallScope,
        request: Any,
        decision: str,
        reason: str,
        unverified: str = "",
    ) -> AccessDecision:
        """``unverified``: the subject a refused credential of ours claims
        (recorded as ``unverified:<subject>``, never as the principal)."""
        principal = scope.principal
        if scope.grant_id and not reason:
            reason = f"break_glass:{scope.grant_id}"
        who = principal.id if principal else (UNVERIFIED_PREFIX + unverified if unverified else "")
        return AccessDecision(
            time_us=time.time_ns() // 1000,
            request_id=request_id,
            principal=who,
            role=principal.role.value if principal else "",
            method=method,
            decision=decision,
            reason=reason[:256],
            purpose=scope.purpose.name if scope.purpose else "",
            member_account_id=scope.member
            or (_member(request) if request is not _UNDECODABLE else ""),
            fields=",".join(scope.fields),
        )

    async def record(
        self,
        method: str,
        request_id: str,
        scope: CallScope,
        request: Any,
        decision: str,
        reason: str = "",
        unverified: str = "",
    ) -> None:
        """Write the record and wait until it is durable; UnavailableError if not."""
        if self.decisions is not None:
            await self.decisions.record(
                self.decision(method, request_id, scope, request, decision, reason, unverified)
            )

    async def record_denial(
        self, method: str, request_id: str, denied: _Denied, request: Any, peer: str
    ) -> None:
        """Record a denial; one of a peer without credentials past its rate
        is only counted (``flush_suppressed`` records the count)."""
        if denied.scope.principal is None and isinstance(denied.error, AuthenticationError):
            try:
                self.anonymous.take(peer.rsplit(":", 1)[0])
            except RateLimitedError:
                self.suppressed[method] += 1
                return
        error, reason, claimed = denied.error, str(denied), ""
        if isinstance(error, AuthenticationError) and error.subject:
            claimed = error.subject
            reason = f"{reason} (token id {error.token_id})"
        await self.record(method, request_id, denied.scope, request, "deny", reason, claimed)

    async def flush_suppressed(self) -> None:
        """One summary record per method for the denials only counted."""
        counts = dict(self.suppressed)
        self.suppressed.clear()
        for method, n in sorted(counts.items()):
            reason = f"{n} more calls without valid credentials refused, recorded as this count"
            await self.record(method, "summary", CallScope(None), None, "deny", reason)


@dataclass(slots=True)
class _Pending:
    """The admission of the call being handled, until someone writes it."""

    checks: Checks
    method: str
    request_id: str
    scope: CallScope
    request: Any
    taken: bool = False

    def take(self) -> AccessDecision | None:
        if self.taken or self.checks.decisions is None:
            return None
        self.taken = True
        return self.checks.decision(
            self.method, self.request_id, self.scope, self.request, "allow", ""
        )


_PENDING: ContextVar[_Pending | None] = ContextVar("loyalty_pending_record", default=None)


def take_pending_record() -> AccessDecision | None:
    """For handlers of mutating calls: the admission record of this call, to
    hand to the appender with the command (written in its transaction).
    None when there is nothing to record (or it was taken already)."""
    pending = _PENDING.get()
    return pending.take() if pending is not None else None


async def _settle_record(pending: _Pending | None, err: Exception | None) -> grpc.Status | None:
    """Write the call's record if nobody has; a status replacing the
    call's own when that fails (fail closed), else None."""
    if pending is None or pending.taken:
        return None
    pending.taken = True
    denied = isinstance(err, AccessError)
    try:
        await pending.checks.record(
            pending.method,
            pending.request_id,
            pending.scope,
            pending.request,
            "deny" if denied else "allow",
            str(err) if denied else "",
        )
    except LedgerError as record_error:
        log.error("access_record_failed", request_id=pending.request_id, method=pending.method)
        return to_status(record_error)
    return None


def observe(
    method: str, handler: grpc.RpcMethodHandler[Any, Any], checks: Checks | None = None
) -> grpc.RpcMethodHandler[Any, Any]:
    """Wrap one unary handler: request id, gate, access record, log line,
    errors to statuses."""
    # an aio server's handlers are coroutine functions
    behavior = cast(Callable[[Any, Any], Awaitable[Any]], handler.unary_unary)

    async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = context.invocation_metadata()
        request_id = _request_id(metadata)
        started = time.perf_counter()
        scope: CallScope | None = None
        pending: _Pending | None = None
        status: grpc.Status | None
        try:
            if checks is not None:
                try:
                    scope = checks.admit(
                        method, request_id, metadata, request, lambda: _peer_certificate(context)
                    )
                except _Denied as denied:
                    scope = denied.scope
                    await checks.record_denial(method, request_id, denied, request, context.peer())
                    raise denied.error from None
                enter_scope(scope)
                pending = _Pending(checks, method, request_id, scope, request)
                _PENDING.set(pending)
            if request is _UNDECODABLE:
                raise _undecodable()
            response = await behavior(request, context)
            status = await _settle_record(pending, None)  # before any data leaves
            if status is None:
                _log_call(request_id, method, started, grpc.StatusCode.OK, scope)
                return response
        except (LedgerError, AccessError) as err:
            status = await _settle_record(pending, err) or to_status(err)
        except Exception as err:
            log.exception("handler_crashed", request_id=request_id, method=method)
            status = await _settle_record(pending, err) or internal_status()
        _log_call(request_id, method, started, status.code, scope)
        trailing = (*status.trailing_metadata, (REQUEST_ID_HEADER, request_id))
        await context.abort(status.code, status.details, trailing)

    return grpc.unary_unary_rpc_method_handler(
        observed,
        request_deserializer=_lenient(handler.request_deserializer),
        response_serializer=_passthrough(handler.response_serializer),
    )


def observe_stream(
    method: str, handler: grpc.RpcMethodHandler[Any, Any], checks: Checks
) -> grpc.RpcMethodHandler[Any, Any]:
    """Wrap a bidirectional streaming handler (server reflection): the gate
    and the access record run before the first message is read."""
    if handler.stream_stream is None:
        raise ValueError(f"{method}: only unary and bidirectional streaming calls are served")
    behavior = cast(Callable[[Any, Any], AsyncIterator[Any]], handler.stream_stream)

    async def observed(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = context.invocation_metadata()
        request_id = _request_id(metadata)
        started = time.perf_counter()
        try:
            try:
                scope = checks.admit(
                    method, request_id, metadata, None, lambda: _peer_certificate(context)
                )
            except _Denied as denied:
                await checks.record_denial(method, request_id, denied, None, context.peer())
                raise denied.error from None
            await checks.record(method, request_id, scope, None, "allow")
        except (LedgerError, AccessError) as err:
            status = to_status(err)
            _log_call(request_id, method, started, status.code, None)
            trailing = (*status.trailing_metadata, (REQUEST_ID_HEADER, request_id))
            await context.abort(status.code, status.details, trailing)
        try:
            async for response in behavior(_decodable(requests), context):
                yield response
        except (LedgerError, AccessError) as err:
            status = to_status(err)
            _log_call(request_id, method, started, status.code, scope)
            trailing = (*status.trailing_metadata, (REQUEST_ID_HEADER, request_id))
            await context.abort(status.code, status.details, trailing)
        _log_call(request_id, method, started, grpc.StatusCode.OK, scope)

    return grpc.stream_stream_rpc_method_handler(
        observed,
        request_deserializer=_lenient(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


async def _decodable(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A stream's requests; an undecodable one ends the call INVALID_ARGUMENT."""
    async for request in requests:
        if request is _UNDECODABLE:
            raise _undecodable()
        yield request


def add_health(server: grpc.aio.Server, servicer: Any) -> None:
    """The standard health service, tokenless as load balancers need it,
    with the lenient deserializer: bad bytes are INVALID_ARGUMENT, never
    UNKNOWN with protobuf's DecodeError text."""
    from grpc_health.v1 import health_pb2

    async def refuse_undecodable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if request is _UNDECODABLE:
            status = to_status(_undecodable())
            await context.abort(status.code, status.details, status.trailing_metadata)

    async def check(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await refuse_undecodable(request, context)
        return await servicer.Check(request, context)

    async def watch(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # grpc's aio HealthServicer.Watch is a coroutine that answers with
        # context.write(), not a generator (found by tests/test_wire_fuzz.py)
        await refuse_undecodable(request, context)
        await servicer.Watch(request, context)

    deserialize = _lenient(health_pb2.HealthCheckRequest.FromString)
    serialize = health_pb2.HealthCheckResponse.SerializeToString
    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=deserialize, response_serializer=serialize
        ),
        "Watch": grpc.unary_stream_rpc_method_handler(
            watch, request_deserializer=deserialize, response_serializer=serialize
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("grpc.health.v1.Health", handlers),)
    )


def _passthrough(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """Serialize responses, except those a handler returns already serialized."""

    def serializer(response: Any) -> bytes:
        if type(response) is bytes or serialize is None:
            return cast(bytes, response)
        return serialize(response)

    return serializer


def _log_call(
    request_id: str,
    method: str,
    started: float,
    code: grpc.StatusCode,
    scope: CallScope | None,
) -> None:
    seconds = time.perf_counter() - started
    metrics.call(method, code.name, seconds)
    fields: dict[str, object] = {
        "request_id": request_id,
        "method": method,
        "status": code.name,
        "duration_ms": round(seconds * 1000, 3),
    }
    principal = scope.principal if scope is not None else None
    if principal is not None:
        fields["principal"] = principal.id
        fields["role"] = principal.role.value
    CALLS.line(fields)
