"""Every invalid request: INVALID_ARGUMENT naming the field and the rule
(google.rpc.BadRequest), never the value sent, never INTERNAL, and no trace
in the journal."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.server import LedgerServer
from tests.conftest import MAX_POINTS, ctx, earn, head_sequence, key, open_account

CANARY = "canary-4242-do-not-echo"
GOOD = "mbr_" + "a" * 26


def _earn(**overrides: object) -> pb.EarnRequest:
    fields: dict[str, object] = dict(
        idempotency_key=key(), context=ctx(), member_account_id=GOOD, points=10
    )
    fields.update(overrides)
    return pb.EarnRequest(**fields)


EARN_CASES: list[tuple[str, pb.EarnRequest, str, str]] = [
    ("key_missing", _earn(idempotency_key=""), "idempotency_key", "is required"),
    ("key_too_short", _earn(idempotency_key="abc"), "idempotency_key", "8-128"),
    ("key_too_long", _earn(idempotency_key="k" * 129), "idempotency_key", "8-128"),
    ("key_bad_chars", _earn(idempotency_key=CANARY + " x"), "idempotency_key", "8-128"),
    ("channel_missing", _earn(context=pb.ChannelContext()), "context.channel_id", "is required"),
    ("channel_bad_chars", _earn(context=ctx("POS " + CANARY)), "context.channel_id", "1-64"),
    ("channel_oversized", _earn(context=ctx("a" * 5000)), "context.channel_id", "1-64"),
    ("store_bad", _earn(context=ctx(store_id="Store/" + CANARY)), "context.store_id", "1-64"),
    (
        "external_too_long",
        _earn(context=ctx(external="x" * 129)),
        "context.external_transaction_id",
        "1-128",
    ),
    (
        "external_has_space",
        _earn(context=ctx(external="tel " + CANARY)),
        "context.external_transaction_id",
        "printable",
    ),
    ("member_missing", _earn(member_account_id=""), "member_account_id", "is required"),
    ("member_malformed", _earn(member_account_id="mbr_" + CANARY), "member_account_id", "mbr_"),
    ("member_upper_case", _earn(member_account_id="mbr_" + "A" * 26), "member_account_id", "mbr_"),
    ("points_zero", _earn(points=0), "points", "greater than 0"),
    ("points_negative", _earn(points=-5), "points", "greater than 0"),
    ("points_above_limit", _earn(points=MAX_POINTS + 1), "points", f"at most {MAX_POINTS}"),
    (
        "currency_unknown",
        _earn(purchase=pb.Money(minor_units=100, currency_code="XYZ")),
        "purchase.currency_code",
        "ISO 4217",
    ),
    (
        "currency_lower_case",
        _earn(purchase=pb.Money(minor_units=100, currency_code="eur")),
        "purchase.currency_code",
        "ISO 4217",
    ),
    (
        "currency_missing",
        _earn(purchase=pb.Money(minor_units=100)),
        "purchase.currency_code",
        "is required",
    ),
    (
        "money_negative",
        _earn(purchase=pb.Money(minor_units=-1, currency_code="EUR")),
        "purchase.minor_units",
        ">= 0",
    ),
]


def _assert_invalid(err: grpc.RpcError, field: str, rule: str) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith(f"{field}: ")
    assert rule in err.details()
    assert CANARY not in err.details()
    status = rpc_status.from_call(err)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == [field]
    assert rule in bad.field_violations[0].description


@pytest.mark.parametrize(
    ("name", "request_", "field", "rule"), EARN_CASES, ids=[c[0] for c in EARN_CASES]
)
def test_invalid_earn(
    stub, server: LedgerServer, name: str, request_: pb.EarnRequest, field: str, rule: str
) -> None:
    seq = head_sequence(server)
    with pytest.raises(grpc.RpcError) as err:
        stub.Earn(request_)
    _assert_invalid(err.value, field, rule)
    assert head_sequence(server) == seq


def test_invalid_other_rpcs(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    earn(stub, account, 10)
    seq = head_sequence(server)
    cases: list[tuple[Callable[[], object], str, str]] = [
        (
            lambda: stub.Redeem(
                pb.RedeemRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=0
                )
            ),
            "points",
            "greater than 0",
        ),
        (
            lambda: stub.Redeem(
                pb.RedeemRequest(
                    idempotency_key=key(), context=ctx(), member_account_id="nope", points=1
                )
            ),
            "member_account_id",
            "mbr_",
        ),
        (
            lambda: stub.Redeem(
                pb.RedeemRequest(
                    idempotency_key=key(),
                    context=pb.ChannelContext(),
                    member_account_id=account,
                    points=1,
                )
            ),
            "context.channel_id",
            "is required",
        ),
        (
            lambda: stub.Reverse(
                pb.ReverseRequest(idempotency_key=key(), context=ctx(), original_sequence=0)
            ),
            "original_sequence",
            ">= 1",
        ),
        (
            lambda: stub.Reverse(
                pb.ReverseRequest(idempotency_key=key(), context=ctx(), original_sequence=1)
            ),
            "member_account_id",
            "is required",
        ),
        (
            lambda: stub.Reverse(
                pb.ReverseRequest(
                    idempotency_key=key(), context=ctx(), original_sequence=1, points=0
                )
            ),
            "points",
            "greater than 0",
        ),
        (
            lambda: stub.Reverse(
                pb.ReverseRequest(idempotency_key="", context=ctx(), original_sequence=1)
            ),
            "idempotency_key",
            "is required",
        ),
        (
            lambda: stub.OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key(), context=ctx("bad channel"))
            ),
            "context.channel_id",
            "1-64",
        ),
        (
            lambda: stub.GetBalance(pb.GetBalanceRequest(member_account_id=CANARY)),
            "member_account_id",
            "mbr_",
        ),
        (lambda: stub.GetEntry(pb.GetEntryRequest(sequence=-3)), "sequence", ">= 1"),
        (
            lambda: stub.ListEntries(
                pb.ListEntriesRequest(member_account_id=account, page_size=101)
            ),
            "page_size",
            "between 0 and 100",
        ),
        (
            lambda: stub.ListEntries(
                pb.ListEntriesRequest(member_account_id=account, page_size=-1)
            ),
            "page_size",
            "between 0 and 100",
        ),
        (
            lambda: stub.ListEntries(
                pb.ListEntriesRequest(member_account_id=account, page_token=CANARY)
            ),
            "page_token",
            "not a token",
        ),
        (
            lambda: stub.ListEntries(
                pb.ListEntriesRequest(member_account_id=account, page_token="AQAAAAAAAAAA")
            ),
            "page_token",
            "not a token",
        ),
        (  # 2^63: past the int64 column the database would compare it with
            lambda: stub.ListEntries(
                pb.ListEntriesRequest(member_account_id=account, page_token="AYAAAAAAAAAA")
            ),
            "page_token",
            "not a token",
        ),
    ]
    for call, field, rule in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        _assert_invalid(err.value, field, rule)
    assert head_sequence(server) == seq


def test_ten_megabyte_field_is_refused_by_the_message_limit(stub, server: LedgerServer) -> None:
    seq = head_sequence(server)
    huge = "x" * (10 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as err:
        stub.Earn(_earn(context=ctx(external=huge)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert head_sequence(server) == seq
    # and the server is still fine afterwards
    account = open_account(stub)
    assert earn(stub, account, 1).balance.points == 1


def test_garbage_bytes_are_not_internal(channel, server: LedgerServer) -> None:
    call = channel.unary_unary("/loyalty.ledger.v1.LedgerService/Earn")
    with pytest.raises(grpc.RpcError) as err:
        call(b"\xff\xff\xff\xff\x0f garbage")
    _assert_invalid(err.value, "request", "not a valid serialized message")
    assert head_sequence(server) == 0


def test_unknown_method_is_unimplemented(channel) -> None:
    call = channel.unary_unary("/loyalty.ledger.v1.LedgerService/Mint")
    with pytest.raises(grpc.RpcError) as err:
        call(b"")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
