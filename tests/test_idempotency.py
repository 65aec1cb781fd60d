"""Retries: the same key replays the first response; another request under
the same key is refused; keys are scoped per channel; failures leave no key."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.server import LedgerServer
from tests.conftest import ctx, earn, head_sequence, key, open_account


def test_replay_returns_identical_response_and_writes_nothing(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    request = pb.EarnRequest(
        idempotency_key=key(), context=ctx(), member_account_id=account, points=40
    )
    first = stub.Earn(request)
    seq = head_sequence(server)
    replays = [stub.Earn(request) for _ in range(3)]
    assert all(
        r.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True)
        for r in replays
    )
    assert head_sequence(server) == seq
    assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 40


def test_replay_of_open_account_returns_the_same_account(stub) -> None:
    request = pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
    assert (
        stub.OpenAccount(request).member_account_id == stub.OpenAccount(request).member_account_id
    )


def test_same_key_different_request_is_already_exists(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    k = key()
    stub.Earn(
        pb.EarnRequest(idempotency_key=k, context=ctx(), member_account_id=account, points=40)
    )
    seq = head_sequence(server)
    variants = [
        lambda: stub.Earn(
            pb.EarnRequest(idempotency_key=k, context=ctx(), member_account_id=account, points=41)
        ),
        lambda: stub.Earn(
            pb.EarnRequest(
                idempotency_key=k,
                context=ctx(store_id="store-0009"),
                member_account_id=account,
                points=40,
            )
        ),
        lambda: stub.Redeem(
            pb.RedeemRequest(idempotency_key=k, context=ctx(), member_account_id=account, points=40)
        ),
    ]
    for call in variants:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "idempotency_key" in err.value.details()
        assert "different request" in err.value.details()
    assert head_sequence(server) == seq


def test_keys_are_scoped_per_channel(stub) -> None:
    account = open_account(stub)
    k = key()
    a = stub.Earn(
        pb.EarnRequest(
            idempotency_key=k, context=ctx("pos-test"), member_account_id=account, points=10
        )
    )
    b = stub.Earn(
        pb.EarnRequest(
            idempotency_key=k, context=ctx("app-test"), member_account_id=account, points=10
        )
    )
    assert a.entry.sequence != b.entry.sequence
    assert b.balance.points == 20


def test_failed_request_leaves_no_trace_and_can_be_retried(stub, server: LedgerServer) -> None:
    account = open_account(stub)
    request = pb.RedeemRequest(
        idempotency_key=key(), context=ctx(), member_account_id=account, points=30
    )
    seq = head_sequence(server)
    with pytest.raises(grpc.RpcError) as err:
        stub.Redeem(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert head_sequence(server) == seq
    earn(stub, account, 30)
    assert stub.Redeem(request).balance.points == 0  # same key now succeeds


def test_concurrent_replays_of_one_key_append_once(stub, server: LedgerServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    account = open_account(stub)
    request = pb.EarnRequest(
        idempotency_key=key(), context=ctx(), member_account_id=account, points=7
    )
    seq = head_sequence(server)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: stub.Earn(request), range(32)))
    assert len({r.SerializeToString(deterministic=True) for r in responses}) == 1
    assert head_sequence(server) == seq + 1
    assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 7


def test_same_key_with_other_order_details_is_refused(stub, server: LedgerServer) -> None:
    """The stored fingerprint leaves order details out (it outlives erasure);
    a replay's details are compared with the sealed entry instead."""
    account = open_account(stub)
    base = dict(idempotency_key=key(), member_account_id=account, points=40)
    first = pb.EarnRequest(
        context=ctx(store_id="store-0001", external="ORD-0001"),
        purchase=pb.Money(minor_units=1999, currency_code="EUR"),
        **base,
    )
    stub.Earn(first)
    assert stub.Earn(first).entry.sequence == head_sequence(server)  # a true replay
    seq = head_sequence(server)
    others = [
        pb.EarnRequest(context=ctx(store_id="store-0002", external="ORD-0001"), **base),
        pb.EarnRequest(
            context=ctx(store_id="store-0001", external="ORD-0002"),
            purchase=pb.Money(minor_units=1999, currency_code="EUR"),
            **base,
        ),
        pb.EarnRequest(
            context=ctx(store_id="store-0001", external="ORD-0001"),
            purchase=pb.Money(minor_units=2000, currency_code="EUR"),
            **base,
        ),
    ]
    for other in others:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Earn(other)
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert head_sequence(server) == seq
    assert server.db is not None
    with server.db.reader.connect() as conn:
        import sqlalchemy as sa

        stored = conn.execute(sa.text("SELECT fingerprint, response FROM idempotency_keys")).all()
    for _fingerprint, response in stored:
        assert b"ORD-0001" not in bytes(response) and b"store-0001" not in bytes(response)


PHONE_LIKE_KEY = "13800138000-till-0007"  # a key a careless till might send (test number)


def test_keys_and_fingerprints_are_stored_as_keyed_digests(
    stub, server: LedgerServer, db_url: str
) -> None:
    """Issue 13, item 8: idempotency_keys is append-only and kept forever, so
    a raw key (a phone number, say) stored there could never be erased."""
    import sqlalchemy as sa

    from ledger.service import messages as m

    account = open_account(stub)
    request = pb.EarnRequest(
        idempotency_key=PHONE_LIKE_KEY, context=ctx(), member_account_id=account, points=5
    )
    first = stub.Earn(request)
    assert stub.Earn(request) == first  # still recognised
    with pytest.raises(grpc.RpcError) as caught:
        stub.Earn(pb.EarnRequest(**{**_fields(request), "points": 6}))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert server.db is not None
    with server.db.reader.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT idempotency_key, fingerprint FROM idempotency_keys")
        ).all()
    assert rows and all(k.startswith("#") and len(k) == 33 for k, _ in rows)
    assert all("13800138000" not in k for k, _ in rows)
    # the fingerprint is keyed too: an unkeyed SHA-256 of the request would
    # let a guess of the key be checked against it
    plain = m.request_meta("Earn", request, request.idempotency_key, request.context).fingerprint
    assert plain not in {bytes(fp) for _, fp in rows}
    if db_url.startswith("sqlite"):
        path = server.db.sqlite_path
        data = b"".join(Path(p).read_bytes() for p in (path, f"{path}-wal") if Path(p).exists())
        assert b"13800138000" not in data


def _fields(request: pb.EarnRequest) -> dict[str, object]:
    return {f.name: v for f, v in request.ListFields()}


def test_rows_stored_before_digests_still_replay(tmp_path: Path) -> None:
    """A key acknowledged before digests (raw key, unkeyed fingerprint, as an
    appender without a keyring still writes) replays after: no second credit,
    and another request under it is still a conflict."""
    from ledger.appender import Appender
    from ledger.errors import IdempotencyConflictError
    from ledger.keys.keyring import FileKeyring
    from ledger.members.vault import MemberVault
    from ledger.service import messages as m
    from ledger.storage.database import open_database
    from ledger.storage.migrate import upgrade

    db = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(db)
    vault = MemberVault.for_keyring(FileKeyring.open(tmp_path / "keyring.json"))
    new = Appender(db=db, vault=vault)
    old = Appender(db=db)  # stores raw keys, as every appender did before
    try:
        opened = m.open_account_command(
            pb.OpenAccountRequest(idempotency_key="legacy-open-0001", context=ctx()), vault
        )
        new.append_blocking(opened)
        request = pb.EarnRequest(
            idempotency_key="legacy-earn-0001",
            context=ctx(),
            member_account_id=opened.account,
            points=7,
        )
        first = old.append_blocking(m.earn_command(request, limit=1000))
        assert new.append_blocking(m.earn_command(request, limit=1000)) == first
        other = pb.EarnRequest(**{**_fields(request), "points": 8})
        with pytest.raises(IdempotencyConflictError):
            new.append_blocking(m.earn_command(other, limit=1000))
        with db.reader.connect() as conn:
            keys = (
                conn.exec_driver_sql("SELECT idempotency_key FROM idempotency_keys").scalars().all()
            )
        # the open (digested) and the old earn (raw); the replay added nothing
        assert sorted(k.startswith("#") for k in keys) == [False, True]
        assert "legacy-earn-0001" in keys
    finally:
        new.close()
        old.close()
        db.dispose()
