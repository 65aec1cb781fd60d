"""Server reflection and health are registered, so grpcurl and load
balancers work without the .proto files."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def test_reflection_lists_and_describes_the_ledger(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="loyalty.ledger.v1.LedgerService"
        ),
    ]
    listed, described = list(stub.ServerReflectionInfo(iter(requests)))
    names = {s.name for s in listed.list_services_response.service}
    assert {"loyalty.ledger.v1.LedgerService", "grpc.health.v1.Health"} <= names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    ledger = next(f for f in files if f.package == "loyalty.ledger.v1")
    methods = {m.name for m in ledger.service[0].method}
    assert {"Earn", "Redeem", "Reverse", "GetBalance", "GetEntry", "ListEntries"} <= methods


def test_health_reports_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "loyalty.ledger.v1.LedgerService"):
        assert (
            stub.Check(health_pb2.HealthCheckRequest(service=service)).status
            == health_pb2.HealthCheckResponse.SERVING
        )
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("unknown service should be NOT_FOUND")


def test_request_id_is_echoed_back(channel: grpc.Channel) -> None:
    from loyalty.ledger.v1 import ledger_pb2 as pb
    from loyalty.ledger.v1 import ledger_pb2_grpc

    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    try:
        stub.GetEntry(pb.GetEntryRequest(sequence=1), metadata=(("x-request-id", "req-test-0001"),))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert dict(err.trailing_metadata())["x-request-id"] == "req-test-0001"
    else:
        raise AssertionError("empty journal has no entry 1")


GARBAGE = b"\xff\xff\xff\xff\x0f garbage"


def test_health_answers_undecodable_bytes_with_invalid_argument(channel: grpc.Channel) -> None:
    for method, call in (
        ("Check", channel.unary_unary("/grpc.health.v1.Health/Check")),
        ("Watch", channel.unary_stream("/grpc.health.v1.Health/Watch")),
    ):
        with pytest.raises(grpc.RpcError) as err:
            result = call(GARBAGE, timeout=5)
            if method == "Watch":
                next(iter(result))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert err.value.details() == "request: is not a valid serialized message"


def test_reflection_answers_undecodable_bytes_with_invalid_argument(channel: grpc.Channel) -> None:
    call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.RpcError) as err:
        list(call(iter([GARBAGE]), timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "request: is not a valid serialized message"
