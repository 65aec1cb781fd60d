"""The database refuses UPDATE and DELETE on the journal, and when a DBA
goes around that (drops the triggers), ``loyalty-ledger verify`` pinpoints
what was changed by sequence number."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.cli import main as cli
from ledger.server import LedgerServer
from ledger.storage.schema import APPEND_ONLY_TABLES
from tests.conftest import earn, open_account, redeem


def _seed(stub) -> str:
    account = open_account(stub)
    earn(stub, account, 100)  # seq 1
    earn(stub, account, 50)  # seq 2
    redeem(stub, account, 30)  # seq 3
    earn(stub, account, 5)  # seq 4
    return account


def _engine(server: LedgerServer) -> sa.Engine:
    return sa.create_engine(server.config.resolved_database_url())


def _drop_triggers(conn: sa.Connection) -> None:
    """What a DBA (or an attacker with the DBA's password) can do."""
    if conn.dialect.name == "sqlite":
        for (name,) in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type='trigger'"
        ).all():
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
    else:
        for table in APPEND_ONLY_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def _assert_refused(server: LedgerServer, statement: str) -> None:
    engine = _engine(server)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _verify(server: LedgerServer, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli(
        ["--log-level", "error", "verify", "--database-url", server.config.resolved_database_url()]
    )
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_postings SET points = points + 1",
        "UPDATE journal_entries SET kind = 'earn'",
        "DELETE FROM journal_entries WHERE seq = 2",
        "DELETE FROM journal_postings",
        "UPDATE account_entries SET seq = 1",
        "DELETE FROM idempotency_keys",
        "INSERT INTO journal_entries SELECT * FROM journal_entries WHERE seq = 1"
        " ON CONFLICT (seq) DO UPDATE SET kind = 'earn'",
    ],
)
def test_database_refuses_update_and_delete(stub, server: LedgerServer, statement: str) -> None:
    _seed(stub)
    _assert_refused(server, statement)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    [  # REPLACE deletes the old row without firing DELETE triggers (SQLite only)
        "INSERT OR REPLACE INTO journal_postings (seq, idx, from_account, to_account, points)"
        " SELECT seq, idx, from_account, to_account, 1000 FROM journal_postings WHERE seq = 2",
        "REPLACE INTO idempotency_keys SELECT channel_id, idempotency_key, fingerprint,"
        " x'00', seq, created_us FROM idempotency_keys",
        "INSERT OR REPLACE INTO journal_entries SELECT * FROM journal_entries",
        "REPLACE INTO account_entries SELECT * FROM account_entries",
    ],
)
def test_sqlite_refuses_replace(stub, server: LedgerServer, statement: str) -> None:
    _seed(stub)
    _assert_refused(server, statement)


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_truncate_is_refused_on_postgresql(stub, server: LedgerServer) -> None:
    _assert_refused(server, "TRUNCATE journal_entries CASCADE")


def test_verify_passes_on_untouched_journal(stub, server: LedgerServer, capsys) -> None:
    _seed(stub)
    code, out = _verify(server, capsys)
    assert code == 0, out
    assert "ok: 4 entries" in out
    assert "head: sequence 4" in out


TAMPERING = {
    # name: (statements after dropping triggers, first bad sequence, check names expected)
    "journal_tampered_amount": (
        ["UPDATE journal_postings SET points = 500 WHERE seq = 2"],
        2,
        {"hash", "balance"},
    ),
    "journal_deleted_entry": (
        ["DELETE FROM journal_postings WHERE seq = 3", "DELETE FROM journal_entries WHERE seq = 3"],
        3,
        {"sequence", "chain"},
    ),
    "journal_reordered_pair": (
        [
            "UPDATE journal_entries SET seq = -1 WHERE seq = 2",
            "UPDATE journal_entries SET seq = 2 WHERE seq = 3",
            "UPDATE journal_entries SET seq = 3 WHERE seq = -1",
            "UPDATE journal_postings SET seq = -1 WHERE seq = 2",
            "UPDATE journal_postings SET seq = 2 WHERE seq = 3",
            "UPDATE journal_postings SET seq = 3 WHERE seq = -1",
        ],
        2,
        {"hash", "chain"},
    ),
    "journal_truncated_tail": (
        ["DELETE FROM journal_postings WHERE seq = 4", "DELETE FROM journal_entries WHERE seq = 4"],
        None,
        {"head", "balance"},
    ),
    "balances_rewritten": (
        [
            "UPDATE accounts SET balance = balance + 1000 "
            "WHERE account_id NOT IN ('program:issued', 'program:redeemed')"
        ],
        None,
        {"balance", "zero-sum"},
    ),
    "head_deleted": (
        ["DELETE FROM journal_head"],
        None,
        {"head"},
    ),
    "journal_time_rewritten": (
        ["UPDATE journal_entries SET time_us = time_us - 86400000000 WHERE seq = 3"],
        3,
        {"hash"},
    ),
}


@pytest.mark.parametrize("attack", sorted(TAMPERING))
def test_verify_pinpoints_tampering(stub, server: LedgerServer, capsys, attack: str) -> None:
    statements, first_bad, checks = TAMPERING[attack]
    _seed(stub)
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            _drop_triggers(conn)
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    code, out = _verify(server, capsys)
    assert code == 1, out
    assert "FAILED" in out
    if first_bad is not None:
        assert f"first bad sequence: {first_bad}\n" in out
    reported = {line.split(": ")[1] for line in out.splitlines() if line.startswith("  ")}
    assert checks <= reported, out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    [  # SQLite stores any type in any column: verify must report, not crash
        "UPDATE journal_postings SET points = 'abc' WHERE seq = 2",
        "UPDATE journal_entries SET hash = 'abc' WHERE seq = 2",
        "UPDATE journal_entries SET time_us = 'yesterday' WHERE seq = 2",
    ],
)
def test_verify_reports_wrongly_typed_rows(
    stub, server: LedgerServer, capsys, statement: str
) -> None:
    _seed(stub)
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            _drop_triggers(conn)
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    code, out = _verify(server, capsys)
    assert code == 1, out
    assert "first bad sequence: 2\n" in out
    assert "sequence 2: encoding:" in out


def test_unreadable_details_are_omitted_not_internal(stub, server: LedgerServer, capsys) -> None:
    """A details format this reader does not know (0x02 will be encrypted
    details) is left out of the answer; it is not a server error."""
    account = _seed(stub)
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            _drop_triggers(conn)
            conn.execute(
                sa.text("UPDATE journal_entries SET details = :d WHERE seq = 2"),
                {"d": b"\x02opaque"},
            )
    finally:
        engine.dispose()
    entry = stub.GetEntry(pb.GetEntryRequest(sequence=2)).entry
    assert entry.sequence == 2 and entry.store_id == "" and not entry.HasField("purchase")
    listed = stub.ListEntries(pb.ListEntriesRequest(member_account_id=account)).entries
    assert [e.sequence for e in listed] == [4, 3, 2, 1]
    code, out = _verify(server, capsys)  # and the chain still shows the change
    assert code == 1 and "sequence 2: hash:" in out


def test_a_deleted_idempotency_record_does_not_let_a_replay_credit_twice(
    stub, server: LedgerServer, capsys
) -> None:
    """Issue 13, item 5: deleting one idempotency_keys row and replaying the
    acknowledged request made a second valid, signed credit that no verifier
    could see. Each entry now carries its request's keyed digest (entry
    format v2): the writer finds the replay in the journal itself, and a
    duplicate forced into the database is reported by `verify`."""
    import grpc

    from tests.conftest import ctx, head_sequence, key

    account = open_account(stub)
    request = pb.EarnRequest(
        idempotency_key=key("dup"), context=ctx(), member_account_id=account, points=70
    )
    first = stub.Earn(request)
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            _drop_triggers(conn)
            deleted = conn.exec_driver_sql(
                f"DELETE FROM idempotency_keys WHERE seq = {first.entry.sequence}"
            ).rowcount
        assert deleted == 1
        head = head_sequence(server)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Earn(request)  # the replay, its record gone
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS
        assert f"already made entry {first.entry.sequence}" in caught.value.details()
        assert head_sequence(server) == head  # no second credit
        assert stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points == 70

        # a DBA who also drops the unique index and copies the entry in
        # (rehashed and relinked as a forger would) is caught by verify
        assert _verify(server, capsys)[0] == 0
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ux_journal_entries_request")
            row = conn.exec_driver_sql(
                f"SELECT request FROM journal_entries WHERE seq = {first.entry.sequence}"
            ).scalar()
        assert row is not None and len(bytes(row)) == 16
    finally:
        engine.dispose()
    second = earn(stub, account, 70)  # an honest second earn, then made a duplicate
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE journal_entries SET request = (SELECT request FROM journal_entries"
            f" WHERE seq = {first.entry.sequence}) WHERE seq = {second.entry.sequence}"
        )
    engine.dispose()
    code, out = _verify(server, capsys)
    assert code != 0
    assert f"made by the same request as entry {first.entry.sequence}" in out


_ZERO_LEAF = {
    "sqlite": "zeroblob(32)",
    "postgresql": "decode(repeat('00', 32), 'hex')",
}


@pytest.mark.parametrize(
    ("statement", "found"),
    [
        # an insider's read record removed from the access log
        ("DELETE FROM access_log WHERE seq = (SELECT max(seq) - 1 FROM access_log)", "access log"),
        # its purpose rewritten (the record no longer hashes to its stored hash)
        ("UPDATE access_log SET purpose = 'legal_request' WHERE seq = 1", "access log at 1: hash"),
        # a leaf of the journal's tree changed, every row intact
        (
            "UPDATE merkle_nodes SET hash = {zero} WHERE log = 1 AND level = 0 AND idx = 0",
            "journal log: merkle: the stored Merkle nodes do not match the rows",
        ),
    ],
    ids=["access-deleted", "access-rewritten", "tree-node"],
)
def test_verify_checks_the_access_log_and_the_tree(
    stub, server: LedgerServer, capsys, statement: str, found: str
) -> None:
    """Issue 13, item 4: a deleted access record passed `verify`, and so did
    Merkle nodes that no longer match the rows."""
    _seed(stub)
    for _ in range(3):  # more access records
        stub.GetBalance(pb.GetBalanceRequest(member_account_id=open_account(stub)))
    assert _verify(server, capsys)[0] == 0
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            _drop_triggers(conn)
            conn.exec_driver_sql(statement.format(zero=_ZERO_LEAF[conn.dialect.name]))
    finally:
        engine.dispose()
    code, out = _verify(server, capsys)
    assert code == 1 and found in out, out


def test_an_inflated_balance_cannot_be_spent(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 13, item 4: a DBA who raised a member's balance in `accounts` let
    the member spend it. Spending relies on balances reconciled with the
    journal's postings the first time a family spends after it is read."""
    import grpc

    from ledger.config import Limits, ServerConfig
    from tests.conftest import ctx, head_sequence, key

    config = ServerConfig(
        data_dir=tmp_path,
        database_url=db_url,
        listen="127.0.0.1:0",
        limits=Limits(max_points_per_entry=1_000_000),
        auth="none",
        plaintext=True,
    )

    def started() -> tuple[LedgerServer, grpc.Channel]:
        s = LedgerServer(config)
        s.start()
        return s, grpc.insecure_channel(f"127.0.0.1:{s.port}")

    from loyalty.ledger.v1 import ledger_pb2_grpc

    s, channel = started()
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    member, honest = open_account(stub), open_account(stub)
    earn(stub, member, 100)
    earn(stub, honest, 100)
    channel.close()
    s.stop(grace=1)
    engine = _engine(s)
    try:
        with engine.begin() as conn:
            # accounts is mutable (materialized): no trigger stands in the way
            changed = conn.exec_driver_sql(
                f"UPDATE accounts SET balance = 100000 WHERE owner = '{member}' AND balance = 100"
            ).rowcount
        assert changed == 1
    finally:
        engine.dispose()
    s, channel = started()  # a fresh writer reads the edited balance
    try:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        head = head_sequence(s)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Redeem(
                pb.RedeemRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=member, points=50_000
                )
            )
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS
        assert "does not match the journal" in caught.value.details()
        assert head_sequence(s) == head
        # a member whose balance is intact spends as before
        redeem(stub, honest, 30)
        assert head_sequence(s) == head + 1
    finally:
        channel.close()
        s.stop(grace=1)
