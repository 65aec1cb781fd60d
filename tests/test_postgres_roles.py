"""On PostgreSQL the server runs as a role that was never granted UPDATE,
DELETE or TRUNCATE on the journal: with the triggers gone, its credentials
still cannot rewrite history, while the ledger works normally."""

from __future__ import annotations

from pathlib import Path

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.cli import main as cli
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from ledger.storage.schema import APPEND_ONLY_TABLES
from tests.conftest import earn, open_account, redeem
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.postgres


def test_app_role_can_append_but_never_rewrite(
    pg_cluster: PostgresCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owner_url = pg_cluster.create_database()
    with psycopg.connect(pg_cluster.admin_dsn(), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS ledger_app_test")
        admin.execute("CREATE ROLE ledger_app_test LOGIN")
    assert cli(["--log-level", "error", "migrate", "--database-url", owner_url]) == 0
    code = cli(
        ["--log-level", "error", "grant-app-role", "--database-url", owner_url, "ledger_app_test"]
    )
    assert code == 0, capsys.readouterr().out
    app_url = owner_url.replace("postgres@", "ledger_app_test@")

    server = LedgerServer(
        ServerConfig(
            data_dir=tmp_path,
            database_url=app_url,
            listen="127.0.0.1:0",
            auth="none",
            plaintext=True,
        )
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            account = open_account(stub)
            earn(stub, account, 50)
            assert redeem(stub, account, 20).balance.points == 30
    finally:
        server.stop(grace=2)

    owner = sa.create_engine(owner_url)
    app = sa.create_engine(app_url)
    try:
        with owner.begin() as conn:  # the attacker disables the triggers...
            for table in APPEND_ONLY_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for statement in (
            "UPDATE journal_postings SET points = 1",
            "DELETE FROM journal_entries",
            "TRUNCATE idempotency_keys",
            "DROP TRIGGER journal_entries_append_only ON journal_entries",
        ):  # ...but the server's credentials still cannot touch history
            denied = pytest.raises(
                sa.exc.ProgrammingError, match=r"permission denied|must be owner"
            )
            with denied, app.begin() as conn:
                conn.exec_driver_sql(statement)
    finally:
        owner.dispose()
        app.dispose()


def test_grant_refuses_bad_role_names_and_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert cli(["--log-level", "error", "grant-app-role", "--database-url", url, "app"]) == 2
    assert "PostgreSQL only" in capsys.readouterr().out
    from ledger.errors import ValidationError
    from ledger.storage.roles import app_role_grants

    with pytest.raises(ValidationError, match="role"):
        app_role_grants("app; DROP TABLE accounts")
