"""Reverse across members and channels (issue 13, item 9).

Any channel could reverse any other channel's earn or redeem by naming its
sequence, and sequences are consecutive. Now a reversal names the member
(another member's entry is NOT_FOUND, like a missing one: no oracle), and
the program file says which channels may reverse which."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.verify import verify_database
from tests.conftest import ctx, key
from tests.support.program import PROGRAM, ProgramServer

POLICY = (
    PROGRAM
    + """
[reversals.cross_channel]
store-pos = ["app"]
returns-desk = ["*"]
"""
)


@pytest.fixture
def ps(db_url: str, tmp_path: Path) -> Iterator[ProgramServer]:
    server = ProgramServer(db_url, tmp_path, program=POLICY)
    yield server
    server.close()


def _reverse(
    ps: ProgramServer, original: int, member: str, channel: str, points: int = 1
) -> pb.ReverseResponse:
    return ps.stub.Reverse(
        pb.ReverseRequest(
            idempotency_key=key("rev"),
            context=ctx(channel),
            original_sequence=original,
            member_account_id=member,
            points=points,
        )
    )


def _refused(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details() or ""


def _head(ps: ProgramServer) -> int:
    assert ps.server.db is not None
    with ps.server.db.reader.connect() as conn:
        return int(conn.exec_driver_sql("SELECT seq FROM journal_head").scalar() or 0)


def test_another_members_entry_is_not_found_like_a_missing_one(ps: ProgramServer) -> None:
    victim, other = ps.open(), ps.open()
    earned = ps.earn(victim, 50, channel="app").entry.sequence
    ps.earn(other, 50, channel="app")
    head = _head(ps)
    wrong_member = _refused(lambda: _reverse(ps, earned, other, "app"))
    missing = _refused(lambda: _reverse(ps, 999_999, other, "app"))
    assert wrong_member == missing  # the same answer: whose entry it is does not leak
    assert wrong_member[0] == grpc.StatusCode.NOT_FOUND
    assert "original_sequence" in wrong_member[1] and victim not in wrong_member[1]
    assert _head(ps) == head  # nothing written
    assert _reverse(ps, earned, victim, "app").balance.points == 49


def test_channels_reverse_others_only_as_the_program_allows(ps: ProgramServer) -> None:
    member = ps.open()
    by_app = ps.earn(member, 40, channel="app").entry.sequence
    by_partner = ps.earn(member, 40, channel="partner-test").entry.sequence
    head = _head(ps)

    # a channel the program names nowhere: only its own entries
    code, details = _refused(lambda: _reverse(ps, by_app, member, "mini-program"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "channel mini-program may not reverse entries made by channel app" in details
    # the till may reverse the app's entries, not the partner's
    code, details = _refused(lambda: _reverse(ps, by_partner, member, "store-pos"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "[reversals]" in details
    assert _head(ps) == head  # refusals leave no trace

    assert _reverse(ps, by_app, member, "store-pos").entry.reverses_sequence == by_app
    assert _reverse(ps, by_partner, member, "partner-test").balance.points == 78  # its own
    assert _reverse(ps, by_partner, member, "returns-desk").balance.points == 77  # "*"
    assert ps.server.db is not None and verify_database(ps.server.db)


def test_the_policy_holds_in_offline_replay(ps: ProgramServer) -> None:
    member = ps.open()
    by_app = ps.earn(member, 40, channel="app").entry
    reverse = pb.ReverseRequest(
        idempotency_key=key("rev"),
        context=ctx("mini-program"),
        original_sequence=by_app.sequence,
        member_account_id=member,
        points=5,
    )
    replay = ps.stub.ReplayOffline(
        pb.ReplayOfflineRequest(items=[pb.ReplayItem(occurred_at=by_app.time, reverse=reverse)])
    )
    (result,) = replay.results
    assert result.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "may not reverse entries made by channel app" in result.message
    assert ps.balance(member).points == 40


def test_the_default_program_allows_no_cross_channel_reversal(db_url: str, tmp_path: Path) -> None:
    ps = ProgramServer(db_url, tmp_path)
    try:
        member = ps.open()
        earned = ps.earn(member, 10, channel="app").entry.sequence
        code, _ = _refused(lambda: _reverse(ps, earned, member, "pos-test"))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert _reverse(ps, earned, member, "app").balance.points == 9
    finally:
        ps.close()
