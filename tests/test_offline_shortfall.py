"""A queued offline redemption that no longer applies (issue 14, item 6).

In an outage the till hands the goods over against the balance it last
saw; by replay time the member may have spent those points elsewhere. The
ledger does not refuse the item (the goods are gone) nor overdraw the
member: it takes what the member has and the rest from the store's
shortfall account, in one ``shortfall`` entry, reported per store in
GetLiability for the store to settle (docs/outage.md). Over the real
server, on SQLite and PostgreSQL; verified by the chain verifier (forged
shortfall shapes: tests/test_chain_kinds.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.ledger.v1 import ledger_pb2 as pb

from tests.conftest import ctx, key
from tests.support.process import run_cli
from tests.support.program import START, ProgramServer

OK = 0


@pytest.fixture
def ps(db_url: str, tmp_path: Path):
    server = ProgramServer(db_url, tmp_path)
    yield server
    server.close()


def _at(moment: dt.datetime) -> Timestamp:
    return Timestamp(seconds=int(moment.timestamp()))


def _offline_redeem(member: str, points: int, store: str, minutes_ago: int) -> pb.ReplayItem:
    return pb.ReplayItem(
        occurred_at=_at(START - dt.timedelta(minutes=minutes_ago)),
        redeem=pb.RedeemRequest(
            idempotency_key=key("offline-redeem"),
            context=ctx("pos-test", store_id=store),
            member_account_id=member,
            points=points,
        ),
    )


def _liability(ps: ProgramServer) -> pb.GetLiabilityResponse:
    return ps.stub.GetLiability(pb.GetLiabilityRequest())


def test_a_replayed_redemption_beyond_the_balance_becomes_the_stores_shortfall(
    ps: ProgramServer,
) -> None:
    member = ps.open()
    ps.earn(member, 100)
    ps.redeem(member, 70)  # online, in the app, while the till was cut off
    item = _offline_redeem(member, 80, "store-test-1", minutes_ago=30)
    first = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=[item])).results[0]
    assert first.code == OK, first.message
    redeemed = first.redeem
    assert redeemed.entry.kind == pb.ENTRY_KIND_SHORTFALL
    assert (redeemed.shortfall_points, redeemed.shortfall_account) == (50, "shortfall:store-test-1")
    # the member's lots give the 30 they have left, the store the other 50
    moves = [(p.from_account, p.to_account, p.points) for p in redeemed.entry.postings]
    assert moves[-1] == ("shortfall:store-test-1", "program:redeemed", 50)
    assert all(a.startswith(member) and to == "program:redeemed" for a, to, _ in moves[:-1])
    assert sum(n for _, _, n in moves[:-1]) == 30
    assert redeemed.balance.points == 0 and ps.balance(member).points == 0  # never below zero
    liability = _liability(ps)
    assert [(b.key, b.points) for b in liability.by_store_shortfall] == [("store-test-1", 50)]
    # members' points redeemed: 70 online and 30 offline; the store's 50 apart
    assert liability.redeemed == 70 + 30 and liability.issued == 100
    assert liability.outstanding == 0
    # the till replays again after a lost response: the same answer, no second entry
    head = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries[0]
    again = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=[item])).results[0]
    assert again.SerializeToString() == first.SerializeToString()
    after = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries[0]
    assert after.sequence == head.sequence
    assert [(b.key, b.points) for b in _liability(ps).by_store_shortfall] == [("store-test-1", 50)]
    # a second one at the same store adds to what it owes (its balance read, not assumed)
    second = _offline_redeem(member, 7, "store-test-1", minutes_ago=20)
    assert ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=[second])).results[0].code == OK
    assert [(b.key, b.points) for b in _liability(ps).by_store_shortfall] == [("store-test-1", 57)]
    ps.verify()


def test_no_points_left_at_all_and_stores_are_kept_apart(ps: ProgramServer) -> None:
    member = ps.open()
    items = [
        _offline_redeem(member, 40, "store-test-1", minutes_ago=20),
        _offline_redeem(member, 15, "store-test-2", minutes_ago=10),
    ]
    results = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=items)).results
    assert [(r.code, r.redeem.shortfall_points) for r in results] == [(OK, 40), (OK, 15)]
    only = [(p.from_account, p.points) for p in results[0].redeem.entry.postings]
    assert only == [("shortfall:store-test-1", 40)]  # the member had nothing to give
    by_store = [(b.key, b.points) for b in _liability(ps).by_store_shortfall]
    assert by_store == [("store-test-1", 40), ("store-test-2", 15)]
    ps.verify()


def test_online_redemptions_are_still_refused_and_covered_ones_are_plain(
    ps: ProgramServer,
) -> None:
    member = ps.open()
    ps.earn(member, 10)
    with pytest.raises(grpc.RpcError) as err:
        ps.redeem(member, 11)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    covered = ps.stub.ReplayOffline(
        pb.ReplayOfflineRequest(items=[_offline_redeem(member, 10, "store-test-1", 5)])
    ).results[0]
    assert covered.code == OK and covered.redeem.entry.kind == pb.ENTRY_KIND_REDEEM
    assert covered.redeem.shortfall_points == 0 and not covered.redeem.shortfall_account
    assert list(_liability(ps).by_store_shortfall) == []


def test_a_shortfall_entry_cannot_be_reversed(ps: ProgramServer) -> None:
    member = ps.open()
    ps.earn(member, 5)
    result = ps.stub.ReplayOffline(
        pb.ReplayOfflineRequest(items=[_offline_redeem(member, 25, "store-test-1", 5)])
    ).results[0]
    with pytest.raises(grpc.RpcError) as err:
        ps.reverse(result.redeem.entry.sequence)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "original_sequence: a shortfall entry cannot be reversed"
    assert [(b.key, b.points) for b in _liability(ps).by_store_shortfall] == [("store-test-1", 20)]
    ps.verify()


def test_a_store_id_too_long_for_its_shortfall_account_is_refused_by_name(
    ps: ProgramServer,
) -> None:
    member = ps.open()
    long_store = "store-" + "9" * 54  # 60 characters: a valid store id online
    item = _offline_redeem(member, 5, long_store, minutes_ago=5)
    result = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=[item])).results[0]
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert result.message.startswith("items[0].redeem.context.store_id: must be at most 54")
    assert list(ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=member)).entries) == []
    assert list(_liability(ps).by_store_shortfall) == []


def test_the_shortfall_report_lists_each_entry_for_the_store_to_settle(
    ps: ProgramServer, db_url: str, tmp_path: Path
) -> None:
    member = ps.open()
    ps.earn(member, 10)
    items = [
        _offline_redeem(member, 25, "store-test-1", minutes_ago=30),  # 10 covered, 15 short
        _offline_redeem(member, 4, "store-test-2", minutes_ago=20),
    ]
    results = ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=items)).results
    args = ["report", "shortfalls", "--data-dir", str(tmp_path), "--database-url", db_url]
    report = json.loads(run_cli(*args, "--format", "json").stdout)
    one_each = {"shortfalls_in_span": 1, "settled_points_in_span": 0}
    assert report["by_store"] == {
        "store-test-1": {"owed_now": 15, "shortfall_points_in_span": 15, **one_each},
        "store-test-2": {"owed_now": 4, "shortfall_points_in_span": 4, **one_each},
    }
    first = report["entries"][0]
    assert first["sequence"] == results[0].redeem.entry.sequence
    assert first["hash"] == results[0].redeem.entry.hash.hex()
    assert (first["kind"], first["points"], first["member_points"]) == ("shortfall", 15, 10)
    assert first["member_account_id"] == member
    one = json.loads(run_cli(*args, "--store", "store-test-2", "--format", "json").stdout)
    assert list(one["by_store"]) == ["store-test-2"] and len(one["entries"]) == 1
    csv_text = run_cli(*args).stdout  # CSV by default, for a spreadsheet
    assert csv_text.splitlines()[0] == (
        "section,store,owed_now,shortfalls_in_span,shortfall_points_in_span,settled_points_in_span"
    )
    assert "entries,store-test-1,shortfall," in csv_text
    # a span before the outage: nothing in it, what is owed still shown
    early = json.loads(
        run_cli(*args, "--from", "2001-01-01", "--to", "2001-01-02", "--format", "json").stdout
    )
    assert early["entries"] == [] and early["by_store"]["store-test-1"]["owed_now"] == 15
    bad = run_cli(*args, "--from", "2026-02-02", "--to", "2026-02-01", check=False)
    assert bad.returncode == 2 and "--to: must be after --from" in bad.stderr


def test_a_store_settles_what_it_owes_once_per_reference_and_never_more(
    ps: ProgramServer, db_url: str, tmp_path: Path
) -> None:
    member = ps.open()
    item = _offline_redeem(member, 30, "store-test-1", minutes_ago=10)
    assert ps.stub.ReplayOffline(pb.ReplayOfflineRequest(items=[item])).results[0].code == OK
    base = ["--data-dir", str(tmp_path), "--database-url", db_url, "--store", "store-test-1"]

    def settle(points: int, reference: str, check: bool = True):
        return run_cli(
            "settle-shortfall", *base, "--points", str(points), "--reference", reference,
            check=check,
        )  # fmt: skip

    paid = json.loads(settle(20, "INV-TEST-0001").stdout)
    assert (paid["points"], paid["owed"], paid["store"]) == (20, 10, "store-test-1")
    assert json.loads(settle(20, "INV-TEST-0001").stdout) == paid  # the same payment, once
    assert [(b.key, b.points) for b in _liability(ps).by_store_shortfall] == [("store-test-1", 10)]
    too_much = settle(11, "INV-TEST-0002", check=False)
    assert too_much.returncode == 2 and "points: more than the store owes (10)" in too_much.stderr
    reused = settle(5, "INV-TEST-0001", check=False)  # a reference names one payment
    assert reused.returncode == 2 and "idempotency_key" in reused.stderr
    unknown = run_cli(
        "settle-shortfall", "--data-dir", str(tmp_path), "--database-url", db_url,
        "--store", "Store 1", "--points", "1", "--reference", "INV-TEST-0003", check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "store: must be a store or channel id" in unknown.stderr
    nothing = settle(0, "INV-TEST-0005", check=False)
    assert nothing.returncode == 2 and "points: must be > 0" in nothing.stderr
    short_ref = settle(1, "INV-1", check=False)  # a reference is an idempotency key
    assert short_ref.returncode == 2 and "idempotency_key: must be 8-128" in short_ref.stderr
    settle(10, "INV-TEST-0004")
    liability = _liability(ps)
    assert list(liability.by_store_shortfall) == []  # settled in full
    assert liability.redeemed == 0 and liability.issued == 0  # the member had no points
    report = json.loads(run_cli("report", "shortfalls", *base[:4], "--format", "json").stdout)
    assert report["by_store"]["store-test-1"] == {
        "owed_now": 0,
        "shortfalls_in_span": 1,
        "shortfall_points_in_span": 30,
        "settled_points_in_span": 30,
    }
    assert [e["kind"] for e in report["entries"]] == ["shortfall", "settlement", "settlement"]
    ps.verify()
