"""What a grpcurl command line of the README does, done in Python.

grpcurl is a Go binary that no package registry this project installs from
carries, so the README's grpcurl lines are tested by doing exactly what
grpcurl does with them: TLS with the given CA (and client certificate), the
given headers, and the schema either from the named .proto file (which
must exist in the repository and declare the method) or, without
``-proto``, from server reflection, called with the same headers; so a
line that grpcurl could not run (reflection refused) fails here too.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


@dataclass
class GrpcurlLine:
    cacert: str = ""
    cert: str = ""
    key: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: str = ""
    import_path: str = ""
    proto: str = ""
    address: str = ""
    target: str = ""  # "list" or a full method name


def lines_of(text: str) -> list[str]:
    """The grpcurl command lines in ``sh`` blocks of a markdown text,
    continuation lines joined."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("grpcurl "):
                out.append(line.strip())
    return out


def parse(line: str, env: dict[str, str]) -> GrpcurlLine:
    words = shlex.split(re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line))
    assert words[0] == "grpcurl"
    parsed = GrpcurlLine()
    rest = []
    i = 1
    while i < len(words):
        flag = words[i]
        if flag.startswith("-") and flag != "-":
            value = words[i + 1]
            i += 2
            if flag == "-H":
                name, _, text = value.partition(":")
                parsed.headers.append((name.strip().lower(), text.strip()))
            else:
                attr = {"-import-path": "import_path", "-d": "data"}.get(flag, flag.lstrip("-"))
                assert hasattr(parsed, attr), f"grpcurl flag {flag} not understood"
                setattr(parsed, attr, value)
        else:
            rest.append(flag)
            i += 1
    parsed.address, parsed.target = rest
    return parsed


def run(
    line: GrpcurlLine, *, root: Path, paths: dict[str, Path], port: int
) -> dict[str, object] | list[str]:
    """Run it against 127.0.0.1:``port``; ``paths`` maps the README's file
    names to the test's. Raises grpc.RpcError as grpcurl would fail."""

    def read(name: str) -> bytes:
        return paths[name].read_bytes()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(line.cacert),
        private_key=read(line.key) if line.key else None,
        certificate_chain=read(line.cert) if line.cert else None,
    )
    metadata = tuple(line.headers)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        if line.target == "list" or not line.proto:
            names = _reflect(channel, metadata)
            if line.target == "list":
                return names
        else:
            source = (root / line.import_path / line.proto).read_text()
            service, method = line.target.rsplit("/", 1)
            assert f"rpc {method}(" in source and service.rsplit(".", 1)[1] in source
        pool = descriptor_pool.Default()
        method_desc = pool.FindMethodByName(line.target.replace("/", "."))
        request_type = message_factory.GetMessageClass(method_desc.input_type)
        response_type = message_factory.GetMessageClass(method_desc.output_type)
        request = json_format.Parse(line.data or "{}", request_type())
        call = channel.unary_unary(
            f"/{line.target}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        response = call(request, metadata=metadata, timeout=10)
        return json_format.MessageToDict(response)


def _reflect(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = list(stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10))
    return [s.name for s in answer.list_services_response.service]
