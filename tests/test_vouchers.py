"""Rewards and vouchers over the real server (docs/program-rules.md §11):
a reward bought with points issues a voucher whose code any channel the
reward allows redeems, once; stock is never oversold; vouchers expire and
can be cancelled with the points back; every step is a journal entry the
verifier checks, and voucher liability shows in GetLiability."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.rewards.v1 import rewards_pb2 as rpb
from loyalty.rewards.v1 import rewards_pb2_grpc

from ledger.keys import voucher_code
from tests.conftest import ctx, head_sequence, key
from tests.support.program import DAY_US, PROGRAM, ProgramServer

REWARDS = """
[[rewards]]
id = "free-coffee"
name = "A free coffee"
points = 300
stock = 3
valid_days = 7

[[rewards]]
id = "bike-hour"
name = "One hour of bike share"
points = 100
claim_channels = ["app"]
redeem_channels = ["bike-share"]

[[rewards]]
id = "summer-tote"
name = "Summer tote bag"
points = 50
starts = 2026-06-01T00:00:00Z

[[rewards]]
id = "welcome-gift"
name = "Welcome gift"
points = 10
per_member = 1
"""

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}-[0-9A-HJKMNP-TV-Z]$")


@pytest.fixture
def ps(db_url: str, tmp_path: Path) -> Iterator[ProgramServer]:
    server = ProgramServer(db_url, tmp_path, program=PROGRAM + REWARDS)
    yield server
    server.close()


def _claim(ps: ProgramServer, account: str, reward: str, channel: str = "pos-test", **kw: str):
    return ps.rewards.ClaimReward(
        rpb.ClaimRewardRequest(
            idempotency_key=kw.get("idem") or key("claim"),
            context=ctx(channel),
            member_account_id=account,
            reward_id=reward,
        )
    )


def _redeem(stub: rewards_pb2_grpc.RewardServiceStub, code: str, channel: str = "pos-other"):
    return stub.RedeemVoucher(
        rpb.RedeemVoucherRequest(idempotency_key=key("use"), context=ctx(channel), code=code)
    )


def _cancel(ps: ProgramServer, account: str, voucher: int):
    return ps.rewards.CancelVoucher(
        rpb.CancelVoucherRequest(
            idempotency_key=key("cancel"),
            context=ctx(),
            member_account_id=account,
            voucher_sequence=voucher,
        )
    )


def _error(err: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str], str]:
    """(code, details, ErrorInfo metadata, ErrorInfo reason or the BadRequest field)."""
    status: status_pb2.Status | None = rpc_status.from_call(err)  # type: ignore[arg-type]
    meta: dict[str, str] = {}
    what = ""
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            meta, what = dict(info.metadata), info.reason
        elif detail.Unpack(bad):
            what = bad.field_violations[0].field
    return err.code(), err.details() or "", meta, what


def _fails(call, *args, **kw) -> tuple[grpc.StatusCode, str, dict[str, str], str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kw)
    return _error(caught.value)


def _member(ps: ProgramServer, points: int) -> str:
    account = ps.open()
    ps.earn(account, points)
    return account


def test_claim_issues_a_voucher_any_channel_redeems_once(ps: ProgramServer) -> None:
    account = _member(ps, 1000)
    claimed = _claim(ps, account, "free-coffee", channel="app")
    voucher = claimed.voucher
    assert CODE.match(voucher.code), "shown in groups of four"
    assert voucher.qr_text == "LV1:" + voucher.code.replace("-", "")
    assert (voucher.reward_id, voucher.reward_name, voucher.points) == (
        "free-coffee",
        "A free coffee",
        300,
    )
    assert voucher.state == rpb.VOUCHER_STATE_ISSUED
    assert voucher.valid_until.seconds * 1_000_000 == ps.clock.now_us + 7 * DAY_US
    assert claimed.entry.kind == pb.ENTRY_KIND_VOUCHER_ISSUE
    assert claimed.balance.available == 700 == ps.balance(account).available
    assert {p.to_account for p in claimed.entry.postings} == {"voucher:free-coffee"}

    # the store (another channel) checks the code a member shows, then honours it
    looked = ps.rewards.GetVoucher(rpb.GetVoucherRequest(code=voucher.code.lower())).voucher
    assert looked.voucher_sequence == voucher.voucher_sequence
    assert looked.state == rpb.VOUCHER_STATE_ISSUED and looked.code == ""  # never the code
    used = _redeem(ps.rewards, voucher.qr_text, channel="pos-other")
    assert used.voucher.state == rpb.VOUCHER_STATE_REDEEMED
    assert used.entry.kind == pb.ENTRY_KIND_VOUCHER_REDEEM
    assert used.entry.reverses_sequence == voucher.voucher_sequence
    assert [(p.from_account, p.to_account, p.points) for p in used.entry.postings] == [
        ("voucher:free-coffee", "program:redeemed", 300)
    ]
    assert used.voucher.ended_by_sequence == used.entry.sequence
    # a second till, or the same code typed again: refused, and says by which entry
    code, details, meta, reason = _fails(_redeem, ps.rewards, voucher.code, "pos-test")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and reason == "VOUCHER_ENDED"
    assert meta == {"state": "redeemed", "ended_by_sequence": str(used.entry.sequence)}
    assert "code:" in details and voucher.code not in details
    assert (
        ps.rewards.GetVoucher(rpb.GetVoucherRequest(code=voucher.code)).voucher.state
        == rpb.VOUCHER_STATE_REDEEMED
    )
    ps.verify()


def test_replayed_claim_and_redeem_answer_the_same_bytes(ps: ProgramServer) -> None:
    account = _member(ps, 1000)
    first = _claim(ps, account, "free-coffee", idem="claim-once")
    again = _claim(ps, account, "free-coffee", idem="claim-once")
    assert first.SerializeToString(deterministic=True) == again.SerializeToString(
        deterministic=True
    )
    assert ps.balance(account).available == 700  # charged once
    request = rpb.RedeemVoucherRequest(
        idempotency_key="use-once", context=ctx("pos-other"), code=first.voucher.code
    )
    one = ps.rewards.RedeemVoucher(request)
    two = ps.rewards.RedeemVoucher(request)
    assert one == two
    ps.verify()


def test_the_code_is_never_stored(ps: ProgramServer, tmp_path: Path) -> None:
    """Neither the database nor its idempotency records hold a code: it is
    computed from the voucher's sequence with the keyring's secret."""
    account = _member(ps, 1000)
    voucher = _claim(ps, account, "free-coffee").voucher
    compact = voucher.code.replace("-", "").encode()
    assert ps.server.db is not None
    path = ps.server.db.sqlite_path if ps.server.db.is_sqlite else None
    if path is None:
        pytest.skip("the file scan is for SQLite; PostgreSQL stores the same rows")
    for file in Path(path).parent.glob(Path(path).name + "*"):
        assert compact not in file.read_bytes()


def test_stock_is_never_oversold_and_comes_back_on_cancel(ps: ProgramServer) -> None:
    members = [_member(ps, 1000) for _ in range(4)]
    vouchers = [_claim(ps, m, "free-coffee").voucher for m in members[:3]]
    before = head_sequence(ps.server)
    code, details, meta, reason = _fails(_claim, ps, members[3], "free-coffee")
    assert (code, reason, meta) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "OUT_OF_STOCK",
        {"stock": "3"},
    )
    assert head_sequence(ps.server) == before  # no trace
    listed = {r.reward_id: r for r in ps.rewards.ListRewards(rpb.ListRewardsRequest()).rewards}
    assert (listed["free-coffee"].stock_left, listed["free-coffee"].unlimited) == (0, False)
    assert listed["bike-hour"].unlimited

    cancelled = _cancel(ps, members[0], vouchers[0].voucher_sequence)
    assert cancelled.voucher.state == rpb.VOUCHER_STATE_CANCELLED
    assert cancelled.entry.kind == pb.ENTRY_KIND_VOUCHER_CANCEL
    assert cancelled.balance.available == 1000 == ps.balance(members[0]).available
    # the points went back to the lot they came from
    issue = ps.stub.GetEntry(pb.GetEntryRequest(sequence=vouchers[0].voucher_sequence)).entry
    assert sorted(p.to_account for p in cancelled.entry.postings) == sorted(
        p.from_account for p in issue.postings
    )
    listed = {r.reward_id: r for r in ps.rewards.ListRewards(rpb.ListRewardsRequest()).rewards}
    assert listed["free-coffee"].stock_left == 1
    _claim(ps, members[3], "free-coffee")  # the returned one
    # a cancelled voucher is no longer redeemable, nor cancellable again
    _, _, meta, reason = _fails(_redeem, ps.rewards, vouchers[0].code)
    assert reason == "VOUCHER_ENDED" and meta["state"] == "cancelled"
    _, _, meta, reason = _fails(_cancel, ps, members[0], vouchers[0].voucher_sequence)
    assert reason == "VOUCHER_ENDED"
    # another member's voucher: as if there were none
    code, details, _, _ = _fails(_cancel, ps, members[0], vouchers[1].voucher_sequence)
    assert code == grpc.StatusCode.NOT_FOUND and "voucher_sequence" in details
    ps.verify()


def test_vouchers_expire_and_go_back_to_stock(ps: ProgramServer) -> None:
    account = _member(ps, 1000)
    voucher = _claim(ps, account, "free-coffee").voucher
    ps.advance(7 * DAY_US - 1)
    assert _redeem is not None
    assert ps.rewards.GetVoucher(rpb.GetVoucherRequest(code=voucher.code)).voucher.state == (
        rpb.VOUCHER_STATE_ISSUED
    )
    assert ps.advance(1) >= 1  # the sweep finds the due voucher
    found = ps.rewards.GetVoucher(rpb.GetVoucherRequest(code=voucher.code)).voucher
    assert found.state == rpb.VOUCHER_STATE_EXPIRED
    expiry = ps.stub.GetEntry(pb.GetEntryRequest(sequence=found.ended_by_sequence)).entry
    assert expiry.kind == pb.ENTRY_KIND_VOUCHER_EXPIRE and expiry.channel_id == "program"
    assert [(p.from_account, p.to_account, p.points) for p in expiry.postings] == [
        ("voucher:free-coffee", "program:expired", 300)
    ]
    _, _, meta, reason = _fails(_redeem, ps.rewards, voucher.code)
    assert (reason, meta["state"]) == ("VOUCHER_ENDED", "expired")
    assert ps.balance(account).available == 700  # paid for, not used: breakage
    listed = {r.reward_id: r for r in ps.rewards.ListRewards(rpb.ListRewardsRequest()).rewards}
    assert listed["free-coffee"].stock_left == 3
    history = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=account)).entries
    assert pb.ENTRY_KIND_VOUCHER_EXPIRE in [e.kind for e in history]  # in the member's history
    ps.verify()


def test_channel_window_and_per_member_rules(ps: ProgramServer) -> None:
    account = _member(ps, 1000)
    _, details, meta, reason = _fails(_claim, ps, account, "bike-hour", "pos-test")
    assert reason == "REWARD_NOT_IN_CHANNEL" and meta == {"channels": "app"}
    bike = _claim(ps, account, "bike-hour", "app").voucher
    _, _, meta, reason = _fails(_redeem, ps.rewards, bike.code, "pos-test")
    assert reason == "REWARD_NOT_IN_CHANNEL" and meta == {"channels": "bike-share"}
    assert _redeem(ps.rewards, bike.code, "bike-share").voucher.state == rpb.VOUCHER_STATE_REDEEMED
    _, details, _, reason = _fails(_claim, ps, account, "summer-tote")
    assert reason == "REWARD_NOT_OFFERED" and "reward_id" in details
    gift = _claim(ps, account, "welcome-gift").voucher
    _, _, meta, reason = _fails(_claim, ps, account, "welcome-gift")
    assert reason == "REWARD_LIMIT" and meta == {"per_member": "1"}
    _redeem(ps.rewards, gift.code)
    _claim(ps, account, "welcome-gift")  # one open at a time
    ps.verify()


def test_invalid_requests_name_the_field_and_leave_no_trace(ps: ProgramServer) -> None:
    account = _member(ps, 200)
    secret = ps.server.voucher_secret
    good = voucher_code.make_code(secret, 999_999)  # well formed, mac right, no such voucher
    forged = voucher_code.make_code(b"not the ledger's secret" + bytes(9), 5)
    typo = ("X" if good[3] != "X" else "Y").join((good[:3], good[4:]))
    before = head_sequence(ps.server)
    cases = [
        (lambda: _redeem(ps.rewards, typo), grpc.StatusCode.INVALID_ARGUMENT, "code"),
        (lambda: _redeem(ps.rewards, "ABC"), grpc.StatusCode.INVALID_ARGUMENT, "code"),
        (lambda: _redeem(ps.rewards, ""), grpc.StatusCode.INVALID_ARGUMENT, "code"),
        (lambda: _redeem(ps.rewards, "A" * 65), grpc.StatusCode.INVALID_ARGUMENT, "code"),
        (lambda: _redeem(ps.rewards, forged), grpc.StatusCode.NOT_FOUND, ""),
        (lambda: _redeem(ps.rewards, good), grpc.StatusCode.NOT_FOUND, ""),
        (lambda: _claim(ps, account, ""), grpc.StatusCode.INVALID_ARGUMENT, "reward_id"),
        (lambda: _claim(ps, account, "No Such!"), grpc.StatusCode.INVALID_ARGUMENT, "reward_id"),
        (lambda: _claim(ps, account, "no-such-reward"), grpc.StatusCode.NOT_FOUND, ""),
        (
            lambda: _claim(ps, "mbr_bad", "free-coffee"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "member_account_id",
        ),
        (
            lambda: _claim(ps, account, "free-coffee"),  # 200 points, costs 300
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_POINTS",
        ),
        (lambda: _cancel(ps, account, 0), grpc.StatusCode.INVALID_ARGUMENT, "voucher_sequence"),
        (lambda: _cancel(ps, account, 10**9), grpc.StatusCode.NOT_FOUND, ""),
        (
            lambda: ps.rewards.ListVouchers(rpb.ListVouchersRequest(member_account_id="x")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "member_account_id",
        ),
        (
            lambda: ps.rewards.GetVoucher(rpb.GetVoucherRequest(code="Z" * 10_000_000)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "",
        ),
    ]
    for call, want, what in cases:
        code, details, _, found = _fails(call)
        assert (code, found) == (want, what), (details, want, what)
        assert "INTERNAL" not in details
    assert head_sequence(ps.server) == before


def test_liability_shows_vouchers_and_the_identity_holds(ps: ProgramServer) -> None:
    a, b = _member(ps, 1000), _member(ps, 1000)
    kept = _claim(ps, a, "free-coffee").voucher
    used = _claim(ps, b, "free-coffee").voucher
    _claim(ps, b, "bike-hour", "app")
    _redeem(ps.rewards, used.code)
    liability = ps.stub.GetLiability(pb.GetLiabilityRequest())
    rewards = {r.reward_id: (r.open_vouchers, r.points) for r in liability.by_reward}
    assert rewards == {"free-coffee": (1, 300), "bike-hour": (1, 100)}
    assert liability.vouchers_outstanding == 400
    assert liability.outstanding == 700 + 600
    assert liability.redeemed == 300
    assert liability.issued == (
        liability.outstanding
        + liability.vouchers_outstanding
        + liability.redeemed
        + liability.expired
        + liability.forfeited
    )
    assert kept.voucher_sequence > 0
    ps.verify()


def test_list_vouchers_newest_first(ps: ProgramServer) -> None:
    account = _member(ps, 1000)
    first = _claim(ps, account, "free-coffee").voucher
    second = _claim(ps, account, "bike-hour", "app").voucher
    _redeem(ps.rewards, first.code)
    open_only = ps.rewards.ListVouchers(rpb.ListVouchersRequest(member_account_id=account))
    assert [v.voucher_sequence for v in open_only.vouchers] == [second.voucher_sequence]
    assert open_only.vouchers[0].code == second.code  # development mode: no principal
    every = ps.rewards.ListVouchers(
        rpb.ListVouchersRequest(member_account_id=account, include_ended=True)
    ).vouchers
    assert [(v.voucher_sequence, v.state) for v in every] == [
        (second.voucher_sequence, rpb.VOUCHER_STATE_ISSUED),
        (first.voucher_sequence, rpb.VOUCHER_STATE_REDEEMED),
    ]


def test_racing_tills_redeem_a_voucher_once_and_claims_never_oversell(
    ps: ProgramServer,
) -> None:
    """Eight connections redeem one code at once: one wins, the others learn
    which entry ended it. Ten members claim the last three coffees at once."""
    address = f"127.0.0.1:{ps.server.port}"
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(address, options=options) for _ in range(8)]
    stubs = [rewards_pb2_grpc.RewardServiceStub(c) for c in channels]
    try:
        members = [_member(ps, 500) for _ in range(10)]

        def claim(i: int) -> str:
            try:
                stubs[i % 8].ClaimReward(
                    rpb.ClaimRewardRequest(
                        idempotency_key=key("race"),
                        context=ctx(),
                        member_account_id=members[i],
                        reward_id="free-coffee",
                    )
                )
            except grpc.RpcError as err:
                return _error(err)[3]
            return "OK"

        with ThreadPoolExecutor(10) as pool:
            outcomes = list(pool.map(claim, range(10)))
        assert sorted(outcomes) == ["OK"] * 3 + ["OUT_OF_STOCK"] * 7
        winner = next(m for m, o in zip(members, outcomes, strict=True) if o == "OK")
        code = ps.rewards.ListVouchers(rpb.ListVouchersRequest(member_account_id=winner))
        voucher = code.vouchers[0]

        def use(i: int) -> str:
            try:
                _redeem(stubs[i], voucher.code, f"pos-{i}")
            except grpc.RpcError as err:
                return _error(err)[3]
            return "OK"

        with ThreadPoolExecutor(8) as pool:
            used = list(pool.map(use, range(8)))
        assert sorted(used) == ["OK"] + ["VOUCHER_ENDED"] * 7
    finally:
        for c in channels:
            c.close()
    ps.verify()


def test_verify_finds_edited_voucher_tables(ps: ProgramServer) -> None:
    """The stock count and the voucher states are decided from tables beside
    the journal: `loyalty-ledger verify` checks them against it."""
    import sqlalchemy as sa

    from ledger.verify_vouchers import verify_vouchers

    account = _member(ps, 1000)
    used = _claim(ps, account, "free-coffee").voucher
    _redeem(ps.rewards, used.code)
    _claim(ps, account, "free-coffee")
    ps.verify()
    assert ps.server.db is not None
    with ps.server.db.writer.begin() as conn:  # a DBA "restocks" the coffee
        conn.execute(sa.text("UPDATE reward_stock SET taken = 0"))
    _, found = verify_vouchers(ps.server.db)
    assert [(p.check, p.voucher) for p in found] == [("stock", None)]
    assert "free-coffee" in str(found[0]) and account not in str(found[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_stock_and_once_hold_across_server_processes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`serve --workers 2`: claims and redemptions arrive at two worker
    processes over 16 connections; the stock is never oversold, a code is
    honoured once, and the journal and voucher tables verify."""
    from ledger.storage.database import open_database
    from ledger.verify import verify_database
    from ledger.verify_vouchers import verify_vouchers
    from tests.support.postgres import PostgresCluster
    from tests.support.process import ServeProcess

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    program = tmp_path / "program.toml"
    program.write_text(PROGRAM + REWARDS)
    server = ServeProcess(
        data_dir=tmp_path / "d",
        database_url=url,
        log_path=tmp_path / "s.log",
        env={"LOYALTY_LEDGER_WORKERS": "2", "LOYALTY_LEDGER_PROGRAM": str(program)},
    )
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(server.address, options=options) for _ in range(16)]
    try:
        server.wait_serving()
        from loyalty.ledger.v1 import ledger_pb2_grpc

        ledgers = [ledger_pb2_grpc.LedgerServiceStub(c) for c in channels]
        stubs = [rewards_pb2_grpc.RewardServiceStub(c) for c in channels]
        members = []
        for i in range(12):
            account = (
                ledgers[i % 16]
                .OpenAccount(pb.OpenAccountRequest(idempotency_key=key(), context=ctx()))
                .member_account_id
            )
            ledgers[(i + 1) % 16].Earn(
                pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=400
                )
            )
            members.append(account)

        def claim(i: int) -> tuple[str, str]:
            try:
                answer = stubs[i % 16].ClaimReward(
                    rpb.ClaimRewardRequest(
                        idempotency_key=key("race"),
                        context=ctx(),
                        member_account_id=members[i],
                        reward_id="free-coffee",
                    )
                )
            except grpc.RpcError as err:
                return _error(err)[3], ""
            return "OK", answer.voucher.code

        with ThreadPoolExecutor(12) as pool:
            claims = list(pool.map(claim, range(12)))
        assert sorted(o for o, _ in claims) == ["OK"] * 3 + ["OUT_OF_STOCK"] * 9
        code = next(c for o, c in claims if o == "OK")

        def use(i: int) -> str:
            try:
                _redeem(stubs[i], code, f"pos-{i}")
            except grpc.RpcError as err:
                return _error(err)[3]
            return "OK"

        with ThreadPoolExecutor(16) as pool:
            used = list(pool.map(use, range(16)))
        assert sorted(used) == ["OK"] + ["VOUCHER_ENDED"] * 15
        for c in channels:
            c.close()
        assert server.terminate() == 0
    finally:
        for c in channels:
            c.close()
        server.kill()
    db = open_database(url)
    try:
        result = verify_database(db)
        assert result, result.problems
        assert verify_vouchers(db) == (3, [])
    finally:
        db.dispose()
