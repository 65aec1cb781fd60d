"""Every access decision, allowed and denied, lands in the append-only
access log (access_log), with ids and names only (no personal data)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from tests.conftest import ctx, key


def test_allow_and_deny_are_recorded(db_url: str, tmp_path: Path) -> None:
    config = ServerConfig(
        data_dir=tmp_path, database_url=db_url, listen="127.0.0.1:0", auth="tokens", plaintext=True
    )
    issuer = TokenIssuer(load_or_create_signing_key(config.token_key_path))
    pos = issuer.issue(
        subject="pos-0042", role=Role.CHANNEL, ttl_seconds=60, channel="pos-test"
    ).token
    analyst = issuer.issue(subject="staff-0003", role=Role.ANALYST, ttl_seconds=60).token
    server = LedgerServer(config)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            md = (("authorization", f"Bearer {pos}"),)
            account = stub.OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key(), context=ctx()), metadata=md
            ).member_account_id
            stub.Earn(
                pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=3
                ),
                metadata=md,
            )
            for metadata in ((("authorization", f"Bearer {analyst}"),), ()):
                with pytest.raises(grpc.RpcError):
                    stub.GetBalance(
                        pb.GetBalanceRequest(member_account_id=account), metadata=metadata
                    )
    finally:
        server.stop(grace=1)  # flushes the recorder

    engine = sa.create_engine(config.resolved_database_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT principal, role, method, decision, reason, member_account_id"
                    " FROM access_log ORDER BY seq"
                )
            ).all()
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM access_log")
    finally:
        engine.dispose()
    ledger = "/loyalty.ledger.v1.LedgerService/"
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("pos-0042", "channel", ledger + "OpenAccount", "allow"),
        ("pos-0042", "channel", ledger + "Earn", "allow"),
        ("staff-0003", "analyst", ledger + "GetBalance", "deny"),  # who tried matters
        ("", "", ledger + "GetBalance", "deny"),  # no credentials: nobody to name
    ]
    assert rows[1][5] == account  # the member the call was about, by id
    assert rows[2][4] == f"role: analyst may not call {ledger}GetBalance"
    assert rows[3][4].startswith("credentials: missing")
