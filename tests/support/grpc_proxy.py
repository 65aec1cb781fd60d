"""A real gRPC proxy in front of a real ledger, for client tests that need
the network to misbehave: it forwards every unary call byte for byte
(metadata included) and, for the calls it is told to, answers the client
with an error instead, either before forwarding (the call never reached
the ledger) or after (the ledger applied it and the answer was lost)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass
class Fault:
    method: str  # e.g. "/loyalty.ledger.v1.LedgerService/Earn"
    code: grpc.StatusCode
    after: bool  # True: forward first (applied), then lose the answer
    times: int = 1
    retry_delay: float | None = None  # sent as google.rpc.RetryInfo


@dataclass
class GrpcProxy:
    target: str
    credentials: grpc.ChannelCredentials | None = None  # to the ledger
    server_credentials: grpc.ServerCredentials | None = None  # to the client (TLS)
    faults: list[Fault] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # every method the client sent
    forwarded: list[str] = field(default_factory=list)  # what reached the ledger
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> int:
        self._channel = (
            grpc.secure_channel(self.target, self.credentials)
            if self.credentials is not None
            else grpc.insecure_channel(self.target)
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers([_Handler(self)])
        port = (
            self._server.add_secure_port("127.0.0.1:0", self.server_credentials)
            if self.server_credentials is not None
            else self._server.add_insecure_port("127.0.0.1:0")
        )
        self._server.start()
        return port

    def stop(self) -> None:
        self._server.stop(0)
        self._channel.close()

    def _fault(self, method: str, after: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.after == after and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls.append(method)
        before = self._fault(method, after=False)
        if before is not None:
            _abort(context, before)
        call: Callable[..., bytes] = self._channel.unary_unary(method)
        metadata = [(k, v) for k, v in context.invocation_metadata() if not k.startswith(":")]
        try:
            response = call(request, metadata=metadata, timeout=context.time_remaining())
        except grpc.RpcError as err:
            with self._lock:
                self.forwarded.append(method)
            context.abort_with_status(_status_of(err))
            raise  # not reached
        with self._lock:
            self.forwarded.append(method)
        after = self._fault(method, after=True)
        if after is not None:
            _abort(context, after)
        return response


def _status_of(err: grpc.RpcError) -> grpc.Status:
    found = rpc_status.from_call(err)  # type: ignore[arg-type]
    if found is not None:
        return rpc_status.to_status(found)
    return rpc_status.to_status(
        status_pb2.Status(code=err.code().value[0], message=err.details() or "")
    )


def _abort(context: grpc.ServicerContext, fault: Fault) -> None:
    status = status_pb2.Status(code=fault.code.value[0], message="injected by the test proxy")
    if fault.retry_delay is not None:
        seconds = int(fault.retry_delay)
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(
                seconds=seconds, nanos=int((fault.retry_delay - seconds) * 1e9)
            )
        )
        status.details.add().Pack(info)
    context.abort_with_status(rpc_status.to_status(status))


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: GrpcProxy) -> None:
        self._proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(handle)
