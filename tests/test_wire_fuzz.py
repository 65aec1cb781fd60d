"""Wire fuzz (issue 14, item 7) of every RPC of every service the server
lists, built from server reflection alone: the request types come from the
reflected FileDescriptorProtos, so a new RPC or field is fuzzed without
touching this file.

For every method, in rounds: a random message (any field set or not, empty
and ~1 MiB strings, unicode, NUL, negative and extreme integers, NaN,
unknown enum values, random bytes, nested and repeated messages, maps),
partly seeded with values that pass validation (the caller's channel, real
member ids and sequences, fresh idempotency keys) so calls get past the
first check; sent once with a token of a role the method admits and once
with a low role (or none); then undecodable or mutated bytes. Unary,
server-streaming (health Watch) and bidirectional (reflection) calls alike.

Asserted for every call: the status is never INTERNAL or UNKNOWN, an OK
answer parses as the method's response type, and the journal does not grow
from a call whose status is not OK (the access log may: every decision is
recorded), except by what was due for the member it touched (a hold past
its timeout: the program's own entry, as the settle sweep would post it).
At the end the server still serves, and the chain verifies.

``LEDGER_FUZZ_ITERATIONS`` (rounds per backend, default 6) and
``LEDGER_FUZZ_SEED`` (default random, printed) set the run; docs/soak.md
has the long configuration.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from loyalty.access.v1 import access_pb2 as apb
from loyalty.access.v1 import access_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from access.permissions import PERMISSIONS
from access.principal import Role
from tests.support.postgres import PostgresCluster
from tests.support.process import run_cli
from tests.support.secure_serve import JournalRows, SecureServe, Tokens, make_certs

pytestmark = pytest.mark.slow

ITERATIONS = int(os.environ.get("LEDGER_FUZZ_ITERATIONS", "6"))
SEED = int(os.environ.get("LEDGER_FUZZ_SEED", str(random.randrange(2**32))))
CHANNEL = "pos-fuzz"
NEVER = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
ENV = {
    "LOYALTY_LEDGER_WORKERS": "2",
    # limits would answer RESOURCE_EXHAUSTED before the handlers see most calls
    "LOYALTY_LEDGER_MEMBER_RATE": "0",
    "LOYALTY_LEDGER_LOOKUP_RATE": "0",
    # nothing but the fuzzer's calls may write the journal
    "LOYALTY_LEDGER_SETTLE_INTERVAL": "0",
}
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# Known server bugs, each with a strict xfail test that fails once it is
# fixed (then delete the entry): (method, a substring of the details). The
# first one found, health Watch answering UNKNOWN, is fixed (see
# test_health_watch_streams_the_status).
KNOWN_BUGS: set[tuple[str, str]] = set()
# With --settle-interval 0, what is due (a hold past its timeout, lots that
# mature or expire) is posted when a call next touches the member, in its
# own entry by the program, even if the call itself is then refused: the
# only entries a refused call may be followed by.
SETTLE_KINDS = {"release", "mature", "expire"}
MIB = 1024 * 1024
_identity = lambda b: b  # noqa: E731 - raw bytes on the wire, both ways


@dataclass(frozen=True)
class Method:
    path: str  # /package.Service/Name
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool


# --- reflection --------------------------------------------------------------


def reflect(channel: grpc.Channel, token: str) -> list[Method]:
    """Every method of every listed service, with message classes built from
    the reflected file descriptors (in a pool of their own)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    md = (("authorization", f"Bearer {token}"),)
    (listed,) = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=md, timeout=10
    )
    services = sorted(s.name for s in listed.list_services_response.service)
    answers = stub.ServerReflectionInfo(
        iter(reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in services),
        metadata=md,
        timeout=10,
    )
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for answer in answers:
        assert answer.WhichOneof("message_response") == "file_descriptor_response", answer
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[proto.name] = proto
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:  # dependencies first
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in sorted(files):
        add(name)
    methods = []
    for service_name in services:
        service = pool.FindServiceByName(service_name)
        for m in service.methods:
            methods.append(
                Method(
                    f"/{service.full_name}/{m.name}",
                    message_factory.GetMessageClass(m.input_type),
                    message_factory.GetMessageClass(m.output_type),
                    m.client_streaming,
                    m.server_streaming,
                )
            )
    return methods


# --- random messages ---------------------------------------------------------

INT32 = (0, 1, -1, 2**31 - 1, -(2**31), 100, 101, 500, 501)
INT64 = (0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1, 2**31, 10**6, 10**6 + 1, 253402300800)
UINT32 = (0, 1, 2**32 - 1, 2**31)
UINT64 = (0, 1, 2**64 - 1, 2**63)
FLOATS = (0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e308, 5e-324)
SIGNED32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
SIGNED64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
UNSIGNED32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
UNSIGNED64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
# characters a validator must cope with: NUL and controls, a BOM, right-to-left
# override, combining marks, full-width digits, astral emoji, Chinese
ODD = "\x00\x01\x1b\x7f\u00a0\u200b\u202e\ufeff\u0301\uff11\U0001f600\u4e2d\u6587'\"%_\\/;"


@dataclass
class Seeds:
    """Values that pass validation, by field name: with them a random
    message gets past the first check into the handler (and sometimes
    succeeds, which may write the journal)."""

    strings: dict[str, list[str]] = field(default_factory=dict)
    ints: dict[str, list[int]] = field(default_factory=dict)
    # (method name, field name): for this method instead (EraseMember gets
    # members of its own, so that the others stay usable)
    by_method: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    keys: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))


class Fuzzer:
    def __init__(self, rng: random.Random, seeds: Seeds) -> None:
        self.rng = rng
        self.seeds = seeds
        self.method = ""
        self.plausible = 0.6  # chance that a field with a seed gets one
        self.unset = 0.3  # chance that a field is left unset

    def text(self) -> str:
        rng = self.rng
        pick = rng.random()
        if pick < 0.15:
            return ""
        if pick < 0.35:
            return "".join(rng.choice(ODD + "abcAZ09-._:@+ ") for _ in range(rng.randint(1, 40)))
        if pick < 0.50:  # anything in the BMP and beyond, but no lone surrogates
            return "".join(
                chr(rng.choice((rng.randrange(0x20, 0xD800), rng.randrange(0xE000, 0x110000))))
                for _ in range(rng.randint(1, 30))
            )
        if pick < 0.53:
            return rng.choice("xé中\x00") * rng.randint(4 * 1024, 60 * 1024)  # under the limit
        if pick < 0.54:
            return "y" * (MIB + rng.randrange(1024))  # over the 64 KiB message limit
        if pick < 0.65:
            return str(rng.choice(INT64))
        return "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.") for _ in range(rng.randint(1, 70))
        )

    def blob(self) -> bytes:
        rng = self.rng
        size = rng.choice((0, 1, 16, 32, 33, rng.randrange(200), rng.randrange(40_000)))
        return rng.randbytes(size)

    def seeded(self, f: FieldDescriptor) -> Any:
        """A plausible value for a field of this name, or None."""
        rng = self.rng
        if rng.random() >= self.plausible:
            return None
        own = self.seeds.by_method.get((self.method, f.name))
        if own:
            return rng.choice(own)
        if f.type == FieldDescriptor.TYPE_STRING:
            if f.name == "idempotency_key":
                return f"fuzz-{next(self.seeds.keys):010d}"
            found = self.seeds.strings.get(f.name)
            return rng.choice(found) if found else None
        if f.cpp_type in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64):
            found = self.seeds.ints.get(f.name)
            if found:
                return rng.choice(found)
            if f.name in ("points", "partner_units", "minutes", "page_size", "duration_seconds"):
                return rng.randint(1, 30)
        return None

    def scalar(self, f: FieldDescriptor) -> Any:
        rng = self.rng
        seeded = self.seeded(f)
        if seeded is not None:
            return seeded
        if self.plausible > 0.9 and rng.random() < 0.6:  # careful: keep to the default
            return f.default_value if not f.is_repeated else self._default(f)
        t = f.type
        if t == FieldDescriptor.TYPE_STRING:
            return self.text()
        if t == FieldDescriptor.TYPE_BYTES:
            return self.blob()
        if t == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if t in SIGNED32:
            return rng.choice((*INT32, rng.randint(-(2**31), 2**31 - 1)))
        if t in SIGNED64:
            return rng.choice((*INT64, rng.randint(-(2**63), 2**63 - 1), rng.randint(1, 50)))
        if t in UNSIGNED32:
            return rng.choice((*UNSIGNED32, rng.randrange(2**32)))
        if t in UNSIGNED64:
            return rng.choice((*UNSIGNED64, rng.randrange(2**64)))
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            value = rng.choice((*FLOATS, rng.uniform(-1e9, 1e9)))
            return max(min(value, 3e38), -3e38) if t == FieldDescriptor.TYPE_FLOAT else value
        if t == FieldDescriptor.TYPE_ENUM:
            known = [v.number for v in f.enum_type.values]
            return rng.choice((*known, *known, rng.choice((-1, 99, 2**31 - 1, -(2**31)))))
        raise AssertionError(f"unhandled field type {t} of {f.full_name}")

    @staticmethod
    def _default(f: FieldDescriptor) -> Any:
        if f.type == FieldDescriptor.TYPE_ENUM:
            return 0
        if f.type == FieldDescriptor.TYPE_STRING:
            return ""
        if f.type == FieldDescriptor.TYPE_BYTES:
            return b""
        if f.type == FieldDescriptor.TYPE_BOOL:
            return False
        return 0

    def message(self, cls: type[Message], method: str = "") -> Message:
        """A random ``cls``; half of them mostly plausible, to get past the
        first check."""
        self.method = method.rsplit("/", 1)[-1]
        careful = self.rng.random() < 0.5
        self.plausible, self.unset = (0.95, 0.05) if careful else (0.6, 0.3)
        msg = cls()
        self.fill(msg, 0)
        return msg

    def fill(self, msg: Message, depth: int) -> None:
        rng = self.rng
        descriptor: Descriptor = msg.DESCRIPTOR
        for f in descriptor.fields:
            if rng.random() < self.unset:
                continue
            is_map = (
                f.message_type is not None
                and f.message_type.GetOptions().map_entry
                and f.is_repeated
            )
            if is_map:
                key_f, value_f = (
                    f.message_type.fields_by_name["key"],
                    f.message_type.fields_by_name["value"],
                )
                target = getattr(msg, f.name)
                for _ in range(rng.choice((0, 1, 2, 5))):
                    k = self.scalar(key_f)
                    if value_f.type == FieldDescriptor.TYPE_MESSAGE:
                        if depth < 4:
                            self.fill(target[k], depth + 1)
                    else:
                        self._set(lambda v, k=k, t=target: t.__setitem__(k, v), value_f)
                continue
            if f.is_repeated:
                target = getattr(msg, f.name)
                count = rng.choice((0, 1, 1, 2, 3, 7))
                if f.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth >= 4:
                        continue
                    for _ in range(count if rng.random() < 0.97 else rng.randint(30, 120)):
                        self.fill(target.add(), depth + 1)
                else:
                    if rng.random() < 0.03:
                        count = rng.randint(100, 1000)
                    for _ in range(count):
                        self._set(target.append, f)
                continue
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < 4:
                    getattr(msg, f.name).SetInParent()
                    self.fill(getattr(msg, f.name), depth + 1)
                continue
            self._set(lambda v, m=msg, n=f.name: setattr(m, n, v), f)

    def _set(self, put: Any, f: FieldDescriptor) -> None:
        for _ in range(3):
            try:
                put(self.scalar(f))
                return
            except (ValueError, TypeError):  # e.g. an unknown value of a closed enum
                continue

    def garbage(self, cls: type[Message], method: str) -> bytes:
        """Bytes that are not, or not quite, a serialized ``cls``."""
        rng = self.rng
        pick = rng.random()
        if pick < 0.25:
            return rng.randbytes(rng.choice((1, 2, 5, 64, 1000, rng.randrange(70_000))))
        if pick < 0.35:
            return rng.choice(
                (
                    b"",
                    b"\xff\xff\xff\xff\x0f garbage",
                    b"\x0a\xff\xff\xff\xff\x0f",  # a length past the end
                    b"\x0a\x02\xc3\x28",  # a string that is not UTF-8
                    b"\x08" + b"\xff" * 10 + b"\x01",  # a varint of 11 bytes
                    b"\x0b\x0c",  # start and end of a group
                    b"\x0a\x80\x80\x80\x80\x10",  # a 4 GiB length
                )
            )
        raw = bytearray(self.message(cls, method).SerializeToString())
        if not raw:
            raw = bytearray(rng.randbytes(8))
        for _ in range(rng.randint(1, 6)):
            how = rng.random()
            where = rng.randrange(len(raw) + 1)
            if how < 0.4 and raw:
                raw[min(where, len(raw) - 1)] ^= 1 << rng.randrange(8)
            elif how < 0.6:
                del raw[where:]
            elif how < 0.8:
                raw[where:where] = rng.randbytes(rng.randint(1, 8))
            else:  # an unknown field, or a known number with another wire type
                raw += bytes([(rng.randrange(1, 16) << 3) | rng.choice((0, 1, 2, 5))])
            if not raw:
                raw = bytearray(b"\x00")
        return bytes(raw)


# --- calls -------------------------------------------------------------------


def call(channel: grpc.Channel, method: Method, payloads: list[bytes], token: str | None) -> Any:
    """The status code of one call, and the answers of an OK one."""
    md = (("authorization", f"Bearer {token}"),) if token else None
    kw = dict(request_serializer=_identity, response_deserializer=_identity)
    try:
        if method.client_streaming and method.server_streaming:
            answers = list(
                channel.stream_stream(method.path, **kw)(iter(payloads), metadata=md, timeout=15)
            )
        elif method.client_streaming:
            answers = [
                channel.stream_unary(method.path, **kw)(iter(payloads), metadata=md, timeout=15)
            ]
        elif method.server_streaming:  # the first answer, then hang up (Watch never ends)
            stream = channel.unary_stream(method.path, **kw)(payloads[0], metadata=md, timeout=15)
            try:
                answers = [next(stream)]
            except StopIteration:
                answers = []
            finally:
                stream.cancel()
        else:
            answers = [channel.unary_unary(method.path, **kw)(payloads[0], metadata=md, timeout=15)]
    except grpc.RpcError as err:
        return err.code(), err.details() or "", []
    return grpc.StatusCode.OK, "", answers


def _roles(method: Method) -> tuple[list[Role], list[Role]]:
    """Roles the permission table admits for the method, and the others."""
    admitted = sorted(PERMISSIONS.get(method.path, frozenset(Role)))
    others = sorted(set(Role) - set(admitted)) or [Role.ANALYST]
    return admitted, others


@dataclass
class Tally:
    by_code: Counter[str] = field(default_factory=Counter)
    by_method: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    known: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    slowest: dict[str, float] = field(default_factory=dict)
    slowest_call: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    settled: int = 0  # due entries posted when a refused call touched a member


def _setup(server: SecureServe, tokens: Tokens) -> Seeds:
    """A few members with points, a hold, an enrolled member, a grant: ids
    and sequences the fuzzer can name."""
    seeds = Seeds()
    with server.channel(tokens(Role.CHANNEL)) as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        context = pb.ChannelContext(channel_id=CHANNEL)
        accounts, victims = (
            [
                ledger.OpenAccount(
                    pb.OpenAccountRequest(idempotency_key=f"fuzz-open-{n}-{i:04d}", context=context)
                ).member_account_id
                for i in range(3)
            ]
            for n in ("member", "victim")
        )
        sequences = []
        for i, account in enumerate(accounts):
            earned = ledger.Earn(
                pb.EarnRequest(
                    idempotency_key=f"fuzz-earn-{i:04d}",
                    context=context,
                    member_account_id=account,
                    points=1000,
                )
            )
            sequences.append(earned.entry.sequence)
        hold = ledger.Hold(
            pb.HoldRequest(
                idempotency_key="fuzz-hold-0001",
                context=context,
                member_account_id=accounts[0],
                points=10,
                minutes=600,
            )
        )
        sequences.append(hold.hold_sequence)
    with server.channel(tokens(Role.MEMBER_SERVICE)) as channel:
        members = members_pb2_grpc.MemberServiceStub(channel)
        enrolled = members.Enroll(
            mpb.EnrollRequest(
                idempotency_key="fuzz-enroll-0001",
                context=pb.ChannelContext(channel_id="staff"),
                profile=mpb.Profile(
                    name="Fuzz Person", email="fuzz@example.invalid", phone="+86 138 0000 0001"
                ),
            )
        ).member_account_id
        accounts.append(enrolled)
        purposes = [
            p.name
            for p in access_pb2_grpc.AccessServiceStub(channel)
            .ListPurposes(apb.ListPurposesRequest())
            .purposes
        ]
    with server.channel(tokens(Role.ADMIN)) as channel:
        grant = access_pb2_grpc.AccessServiceStub(channel).GrantBreakGlass(
            apb.GrantBreakGlassRequest(
                grantee="analyst-1", reason="incident F-1 fuzz review", duration_seconds=600
            )
        )
    member_fields = ["member_account_id", "to_member_account_id", "referred_member_account_id"]
    seeds.strings = {
        "channel_id": [CHANNEL],
        "store_id": ["store-0001"],
        "currency_code": ["EUR", "USD", "CNY"],
        "purpose": purposes,
        "grant_id": [grant.grant_id],
        "grantee": ["analyst-1", "security-1"],
        "reason": ["incident F-2 on-call check"],
        "email": ["fuzz@example.invalid", "other@example.invalid"],
        "phone": ["+86 138 0000 0001", "13800000002"],
        "fields": ["email", "phone", "name", "birth_date"],
        "service": ["", "loyalty.ledger.v1.LedgerService"],
        "external_transaction_id": ["order-0001"],
        "categories": ["grocery", "fuel"],
        "device_id": ["device-0001"],
        "referrer_device_id": ["device-0002"],
        **{name: accounts for name in member_fields},
    }
    seeds.ints = {
        name: sequences
        for name in ("sequence", "original_sequence", "hold_sequence", "leaf_index", "first")
    }
    seeds.ints["tree_size"] = [1, 2, len(sequences) + 1]
    seeds.ints["minor_units"] = [1999, 0]
    seeds.by_method[("EraseMember", "member_account_id")] = victims
    return seeds


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_rpc_survives_random_and_garbage_requests(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    print(f"LEDGER_FUZZ_SEED={SEED}")  # shown with a failure: reproduces the messages
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    data = tmp_path / "data"
    tokens = Tokens(data, channel=CHANNEL)
    bad_token = tokens(Role.ADMIN)[:-4] + "AAAA"  # a signature that does not match
    server = SecureServe(
        data_dir=data,
        certs=make_certs(tmp_path / "certs"),
        database_url=url,
        log_path=tmp_path / "serve.log",
        env=ENV,
    )
    journal = JournalRows(url)
    tally = Tally()
    rng = random.Random(f"{SEED}/{backend}")
    started = time.monotonic()
    try:
        server.wait_serving()
        seeds = _setup(server, tokens)
        fuzz = Fuzzer(rng, seeds)
        access_before = journal.access_records()
        with server.channel() as channel:  # the token goes in each call's metadata
            methods = reflect(channel, tokens(Role.COMPLIANCE))
            paths = {m.path for m in methods}
            # every service the server runs: the four of the ledger, health, reflection
            assert {p.split("/")[1] for p in paths} >= {
                "loyalty.ledger.v1.LedgerService",
                "loyalty.members.v1.MemberService",
                "loyalty.access.v1.AccessService",
                "loyalty.audit.v1.AuditService",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            }
            assert set(PERMISSIONS) - paths <= {
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            }
            head = journal.head()
            for _ in range(ITERATIONS):
                for method in rng.sample(methods, len(methods)):
                    admitted, others = _roles(method)
                    low = rng.choice([*others, None, "bad"])
                    attempts: list[tuple[str, Role | str | None, list[bytes]]] = []
                    for kind, role in (("message", rng.choice(admitted)), ("message", low)):
                        n = rng.randint(1, 3) if method.client_streaming else 1
                        msgs = [
                            fuzz.message(method.request, method.path).SerializeToString()
                            for _ in range(n)
                        ]
                        attempts.append((kind, role, msgs))
                    attempts.append(
                        (
                            "garbage",
                            rng.choice([*admitted, low]),
                            [fuzz.garbage(method.request, method.path)],
                        )
                    )
                    for kind, role, payloads in attempts:
                        token = bad_token if role == "bad" else tokens(role) if role else None
                        sent = time.monotonic()
                        code, details, answers = call(channel, method, payloads, token)
                        took = time.monotonic() - sent
                        tally.seconds[method.path] += took
                        if took > tally.slowest.get(method.path, 0):
                            tally.slowest[method.path] = took
                            tally.slowest_call[method.path] = (
                                f"{code.name} {kind} {sum(map(len, payloads))} bytes"
                            )
                        after = journal.head()
                        tally.calls += 1
                        tally.by_code[code.name] += 1
                        tally.by_method[(method.path, code.name)] += 1
                        where = (
                            f"{method.path} as {getattr(role, 'value', role)} ({kind}): "
                            f"{code.name} {details[:200]!r}; request "
                            f"{b''.join(payloads)[:300]!r}"
                        )
                        if code in NEVER and any(
                            method.path == path and text in details for path, text in KNOWN_BUGS
                        ):
                            tally.known[method.path] += 1
                        elif code in NEVER:
                            tally.failures.append(where)
                        if code != grpc.StatusCode.OK and after != head:
                            grown = journal.entries_after(head[1])
                            if grown and all(
                                kind in SETTLE_KINDS and channel_id == "program" and not request
                                for _, kind, channel_id, request in grown
                            ):
                                tally.settled += len(grown)
                            else:
                                tally.failures.append(
                                    f"journal {head} -> {after} ({grown}) after {where}"
                                )
                        if code == grpc.StatusCode.OK:
                            for answer in answers:  # an OK answer is the declared type
                                method.response.FromString(answer)
                        head = after
        # still serving, and nothing the fuzzer did broke the chain
        assert server.proc.poll() is None
        with server.channel(tokens(Role.CHANNEL)) as channel:
            ledger_pb2_grpc.LedgerServiceStub(channel).GetBalance(
                pb.GetBalanceRequest(member_account_id=seeds.strings["member_account_id"][0]),
                timeout=10,
            )
        access_after = journal.access_records()
        assert server.terminate() == 0
    finally:
        server.kill()
        journal.dispose()
    out = run_cli("verify", "--data-dir", str(data), "--database-url", url, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    seconds = time.monotonic() - started
    print(
        f"\nwire fuzz [{backend}] seed={SEED} rounds={ITERATIONS} methods={len(methods)} "
        f"calls={tally.calls} in {seconds:.0f} s; journal {head[0]} entries, "
        f"access log +{access_after - access_before}"
    )
    for code, n in tally.by_code.most_common():
        print(f"  {code}: {n}")
    ok_methods = sorted({p for (p, c) in tally.by_method if c == "OK"})
    print(f"  methods with an OK answer: {len(ok_methods)} of {len(methods)}")
    print(f"  due entries posted beside a refused call: {tally.settled}")
    if os.environ.get("LEDGER_FUZZ_VERBOSE"):
        for (path, code), n in sorted(tally.by_method.items()):
            print(f"    {path} {code}: {n}")
        for path, t in tally.seconds.most_common(8):
            print(
                f"    slowest: {path} {t:.2f} s, at most {tally.slowest[path]:.3f} s a call "
                f"({tally.slowest_call[path]})"
            )
    for path, n in tally.known.items():
        print(f"  known bug, not counted as a failure: {path} {n} times")
    assert tally.failures == [], "\n".join(tally.failures[:20])


def test_health_watch_streams_the_status(channel: grpc.Channel) -> None:
    """Found by the fuzz (fixed): every Watch answered UNKNOWN, so gRPC
    client-side health checking could not use it. Tokenless, like a load
    balancer."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stream = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    try:
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        stream.cancel()
