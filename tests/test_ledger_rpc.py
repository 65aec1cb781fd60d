"""Earn, redeem, reverse, balances and history over a real server."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.server import LedgerServer
from ledger.verify import verify_database
from tests.conftest import ctx, earn, key, open_account, redeem


def test_earn_credits_member_and_chains_entries(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    first = earn(stub, account, 120, purchase=pb.Money(minor_units=1999, currency_code="EUR"))
    second = earn(stub, account, 30)

    assert first.balance.points == 120
    assert second.balance.points == 150
    assert first.entry.kind == pb.ENTRY_KIND_EARN
    # every earn makes a lot, named after the entry's own sequence
    assert first.entry.postings[0] == pb.Posting(
        from_account="program:issued",
        to_account=f"{account}/lot/{first.entry.sequence}",
        points=120,
    )
    # the response withholds the order details (stored encrypted under the
    # member's key); a read for a purpose that shows them opens them
    assert first.entry.details_withheld and not first.entry.HasField("purchase")
    assert first.entry.details[0] == 0x02 and b"EUR" not in first.entry.details
    read = stub.GetEntry(
        pb.GetEntryRequest(sequence=first.entry.sequence, purpose="customer_support")
    ).entry
    assert read.purchase == pb.Money(minor_units=1999, currency_code="EUR")
    assert not read.details_withheld and read.details == first.entry.details
    plain = stub.GetEntry(pb.GetEntryRequest(sequence=first.entry.sequence)).entry
    assert plain.details_withheld and not plain.HasField("purchase")
    assert first.entry.prev_hash == bytes(32)
    assert second.entry.sequence == first.entry.sequence + 1
    assert second.entry.prev_hash == first.entry.hash
    assert len(second.entry.hash) == 32
    assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 150
    assert server.db is not None and verify_database(server.db)


def test_redeem_debits_and_refuses_overdraft_with_available_balance(
    stub, server: LedgerServer
) -> None:
    account = open_account(stub)
    earn(stub, account, 100)
    assert redeem(stub, account, 60).balance.points == 40

    with pytest.raises(grpc.RpcError) as err:
        redeem(stub, account, 41)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "insufficient points" in err.value.details()
    assert "41" not in err.value.details()  # amounts travel in ErrorInfo only
    status = rpc_status.from_call(err.value)
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert info.reason == "INSUFFICIENT_POINTS"
    assert info.metadata["available"] == "40"
    assert info.metadata["requested"] == "41"
    assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 40


def test_reverse_earn_fully_and_redeem_partly(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    earned = earn(stub, account, 100).entry
    redeemed = redeem(stub, account, 40).entry

    part = stub.Reverse(
        pb.ReverseRequest(
            idempotency_key=key(),
            context=ctx(),
            original_sequence=redeemed.sequence,
            points=15,
            member_account_id=account,
        )
    )
    assert part.entry.kind == pb.ENTRY_KIND_REVERSE
    assert part.entry.reverses_sequence == redeemed.sequence
    assert part.entry.postings[0] == pb.Posting(  # back into the lot it came from
        from_account="program:redeemed", to_account=f"{account}/lot/{earned.sequence}", points=15
    )
    assert part.balance.points == 75

    rest = stub.Reverse(
        pb.ReverseRequest(
            idempotency_key=key(),
            context=ctx(),
            original_sequence=redeemed.sequence,
            member_account_id=account,
        )
    )
    assert rest.entry.postings[0].points == 25  # all that was left
    assert rest.balance.points == 100

    with pytest.raises(grpc.RpcError) as err:
        stub.Reverse(
            pb.ReverseRequest(
                idempotency_key=key(),
                context=ctx(),
                original_sequence=redeemed.sequence,
                member_account_id=account,
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already fully reversed" in err.value.details()

    full = stub.Reverse(
        pb.ReverseRequest(
            idempotency_key=key(),
            context=ctx(),
            original_sequence=earned.sequence,
            member_account_id=account,
        )
    )
    assert full.entry.postings[0] == pb.Posting(
        from_account=f"{account}/lot/{earned.sequence}", to_account="program:issued", points=100
    )
    assert full.balance.points == 0
    assert server.db is not None and verify_database(server.db)


def test_reverse_rules(stub) -> None:
    account = open_account(stub)
    earned = earn(stub, account, 50).entry
    redeem(stub, account, 45)

    cases = [
        (
            pb.ReverseRequest(original_sequence=earned.sequence, points=51),
            grpc.StatusCode.FAILED_PRECONDITION,
            "exceeds what is left to reverse",
        ),
        # the member spent the points: reversing the earn would overdraw
        (
            pb.ReverseRequest(original_sequence=earned.sequence, points=10),
            grpc.StatusCode.FAILED_PRECONDITION,
            "insufficient points",
        ),
        (
            pb.ReverseRequest(original_sequence=999_999),
            grpc.StatusCode.NOT_FOUND,
            "original_sequence",
        ),
    ]
    for request, code, text in cases:
        request.idempotency_key = key()
        request.member_account_id = account
        request.context.CopyFrom(ctx())
        with pytest.raises(grpc.RpcError) as err:
            stub.Reverse(request)
        assert err.value.code() == code
        assert text in err.value.details()
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            status = rpc_status.from_call(err.value)
            info = error_details_pb2.ErrorInfo()
            assert status is not None and status.details[0].Unpack(info)
            assert info.metadata["requested"] == str(request.points)
            if info.reason == "NOT_REVERSIBLE":
                assert info.metadata["left_to_reverse"] == "50"

    reversal = stub.Reverse(
        pb.ReverseRequest(
            idempotency_key=key(),
            context=ctx(),
            original_sequence=earned.sequence,
            points=5,
            member_account_id=account,
        )
    ).entry
    with pytest.raises(grpc.RpcError) as err:
        stub.Reverse(
            pb.ReverseRequest(
                idempotency_key=key(),
                context=ctx(),
                original_sequence=reversal.sequence,
                member_account_id=account,
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "reverse entry cannot be reversed" in err.value.details()


def test_get_entry_and_history_newest_first_with_pages(stub) -> None:
    account = open_account(stub)
    other = open_account(stub)
    seqs = [earn(stub, account, n).entry.sequence for n in range(1, 8)]
    earn(stub, other, 5)

    got = stub.GetEntry(pb.GetEntryRequest(sequence=seqs[2])).entry
    assert got.postings[0].points == 3 and got.sequence == seqs[2]

    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = stub.ListEntries(
            pb.ListEntriesRequest(member_account_id=account, page_size=3, page_token=token)
        )
        seen.extend(e.sequence for e in page.entries)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seqs, reverse=True)
    assert pages == 3


def test_unknown_account_and_entry_are_not_found(stub) -> None:
    missing = "mbr_" + "a" * 26
    calls = [
        lambda: stub.GetBalance(pb.GetBalanceRequest(member_account_id=missing)),
        lambda: stub.ListEntries(pb.ListEntriesRequest(member_account_id=missing)),
        lambda: stub.GetEntry(pb.GetEntryRequest(sequence=424242)),
        lambda: stub.Earn(
            pb.EarnRequest(
                idempotency_key=key(), context=ctx(), member_account_id=missing, points=1
            )
        ),
        lambda: stub.Redeem(
            pb.RedeemRequest(
                idempotency_key=key(), context=ctx(), member_account_id=missing, points=1
            )
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_history_is_one_balance_everywhere_across_channels(stub) -> None:
    account = open_account(stub, "app-test")
    stub.Earn(
        pb.EarnRequest(
            idempotency_key=key(), context=ctx("app-test"), member_account_id=account, points=70
        )
    )
    resp = stub.Redeem(
        pb.RedeemRequest(
            idempotency_key=key(),
            context=ctx("pos-test", "store-0042"),
            member_account_id=account,
            points=20,
        )
    )
    assert resp.balance.points == 50
    entries = stub.ListEntries(
        pb.ListEntriesRequest(member_account_id=account, purpose="customer_support")
    ).entries
    assert [e.channel_id for e in entries] == ["pos-test", "app-test"]
    assert entries[0].store_id == "store-0042"
