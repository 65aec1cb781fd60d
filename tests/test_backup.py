"""Backup and restore (issue 14, item 5), on SQLite and PostgreSQL, through
the CLI as an operator runs it: an online backup of a serving ledger
restores into an empty database and serves the same balances and
profiles; a tampered backup and a rolled-back one are refused, and
nothing is left behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from ledger.backup import _sha256
from ledger.config import Limits, ServerConfig
from ledger.server import LedgerServer
from tests.conftest import ctx, earn, key
from tests.support.postgres import PostgresCluster, find_pg_bin
from tests.support.process import run_cli
from tests.test_tamper import _drop_triggers


class Deployment:
    """One deployment's keyring and signer state (in ``home``), and a
    server on whichever database it is given."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.keyring = home / "keys" / "keyring.json"

    def config(self, url: str, data: Path) -> ServerConfig:
        return ServerConfig(
            data_dir=data,
            database_url=url,
            keyring=self.keyring,
            listen="127.0.0.1:0",
            limits=Limits(max_points_per_entry=100_000),
            auth="none",
            plaintext=True,
            checkpoint_interval=0,
        )

    def args(self, url: str) -> list[str]:
        return ["--database-url", url, "--keyring", str(self.keyring)]

    def serve(self, url: str, data: Path) -> LedgerServer:
        server = LedgerServer(self.config(url, data))
        server.start()
        return server


def _use(server: LedgerServer) -> tuple[str, int]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        members = members_pb2_grpc.MemberServiceStub(channel)
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        account = members.Enroll(
            mpb.EnrollRequest(
                idempotency_key=key(),
                context=ctx(),
                profile=mpb.Profile(name="Test Backup", email="backup@example.invalid"),
            )
        ).member_account_id
        for points in (30, 20, 10):
            earn(stub, account, points)
        members.UpdateMember(
            mpb.UpdateMemberRequest(
                member_account_id=account,
                profile=mpb.Profile(name="Test Restored"),
                fields=["name"],
            )
        )
        return account, 60


def _read(server: LedgerServer, account: str) -> tuple[int, str]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        members = members_pb2_grpc.MemberServiceStub(channel)
        points = stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points
        name = members.GetMember(
            mpb.GetMemberRequest(member_account_id=account, purpose="legal_request")
        ).profile.name
        return points, name


@pytest.fixture
def empty_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second, empty database of the same kind, to restore into."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored' / 'ledger.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


def _tables(url: str) -> list[str]:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return []
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_online_backup_restores_and_serves_the_same_ledger(
    db_url: str, empty_url: str, tmp_path: Path
) -> None:
    home = Deployment(tmp_path / "home")
    server = home.serve(db_url, tmp_path / "live")
    try:
        account, points = _use(server)
        backup = tmp_path / "backup"  # taken while the server serves
        done = run_cli("backup", *home.args(db_url), "--out", str(backup))
        assert "journal: checkpoint at" in done.stdout
    finally:
        server.stop(grace=1)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["format"] == "loyalty-ledger-backup/1"
    assert set(manifest["checkpoints"]) == {"journal", "access"}
    assert not list(backup.glob("keyring*"))  # the keyring is not in the backup
    restored = run_cli("restore", *home.args(empty_url), str(backup))
    assert "journal: 5 entries restored, verified" in restored.stdout  # 2 profile, 3 earns
    assert run_cli("verify", "--database-url", empty_url).returncode == 0
    again = home.serve(empty_url, tmp_path / "after")
    try:
        assert _read(again, account) == (points, "Test Restored")
    finally:
        again.stop(grace=1)


def _tamper_sqlite_backup(backup: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{backup / 'ledger.db'}")
    with engine.begin() as conn:
        _drop_triggers(conn)
        conn.exec_driver_sql("UPDATE journal_postings SET points = points + 1000 WHERE seq = 2")
        conn.exec_driver_sql(
            "UPDATE accounts SET balance = balance + 1000 WHERE account_id LIKE 'mbr_%'"
        )
    engine.dispose()


def _tamper_pg_backup(backup: Path, cluster: PostgresCluster) -> None:
    """As someone with the backup storage would: restore it aside, rewrite
    a posting, dump it again."""
    bin_dir = find_pg_bin()
    assert bin_dir is not None
    scratch = cluster.create_database()
    libpq = scratch.replace("postgresql+psycopg://", "postgresql://")
    subprocess.run(
        [
            str(bin_dir / "pg_restore"),
            "--no-owner",
            "--dbname",
            libpq,
            str(backup / "ledger.pgdump"),
        ],
        check=True,
        capture_output=True,
    )
    engine = sa.create_engine(scratch)
    with engine.begin() as conn:
        _drop_triggers(conn)
        conn.exec_driver_sql("UPDATE journal_postings SET points = points + 1000 WHERE seq = 2")
    engine.dispose()
    subprocess.run(
        [
            *(str(bin_dir / "pg_dump"), "--format=custom", "--no-owner"),
            *("--file", str(backup / "ledger.pgdump"), libpq),
        ],
        check=True,
        capture_output=True,
    )


def test_a_tampered_backup_is_refused_and_leaves_nothing(
    db_url: str, empty_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = Deployment(tmp_path / "home")
    server = home.serve(db_url, tmp_path / "live")
    try:
        _use(server)
        backup = tmp_path / "backup"
        run_cli("backup", *home.args(db_url), "--out", str(backup))
    finally:
        server.stop(grace=1)
    if db_url.startswith("sqlite"):
        _tamper_sqlite_backup(backup)
    else:
        _tamper_pg_backup(backup, request.getfixturevalue("pg_cluster"))
    # without the new digest, the manifest catches the change at once
    refused = run_cli("restore", *home.args(empty_url), str(backup), check=False)
    assert refused.returncode == 1 and "SHA-256 is not the one in the manifest" in refused.stderr
    # with it recomputed (the manifest is not secret), verification does
    manifest = json.loads((backup / "manifest.json").read_text())
    manifest["sha256"] = _sha256(backup / manifest["file"])
    (backup / "manifest.json").write_text(json.dumps(manifest))
    refused = run_cli("restore", *home.args(empty_url), str(backup), check=False)
    assert refused.returncode == 1, refused.stdout
    assert "REFUSED" in refused.stderr and "nothing was restored" in refused.stderr
    assert "journal" in refused.stderr
    assert _tables(empty_url) == []  # nothing left behind


def test_a_backup_older_than_what_was_signed_is_flagged(
    db_url: str, empty_url: str, tmp_path: Path
) -> None:
    home = Deployment(tmp_path / "home")
    server = home.serve(db_url, tmp_path / "live")
    try:
        account, _ = _use(server)
        old = tmp_path / "old-backup"
        run_cli("backup", *home.args(db_url), "--out", str(old))
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            earn(ledger_pb2_grpc.LedgerServiceStub(channel), account, 5)
        newer = tmp_path / "newer-backup"  # signs a checkpoint of the longer journal
        run_cli("backup", *home.args(db_url), "--out", str(newer))
    finally:
        server.stop(grace=1)
    refused = run_cli("restore", *home.args(empty_url), str(old), check=False)
    assert refused.returncode == 1
    assert "older than the newest checkpoint this signer signed" in refused.stderr
    assert "loses 1 signed entries" in refused.stderr
    assert _tables(empty_url) == []
    accepted = run_cli("restore", *home.args(empty_url), str(old), "--accept-rollback")
    assert "WARNING: journal: 1 entries signed before are not in this backup" in accepted.stderr
    assert _tables(empty_url)


def test_restore_refuses_to_overwrite_a_ledger(db_url: str, tmp_path: Path) -> None:
    home = Deployment(tmp_path / "home")
    server = home.serve(db_url, tmp_path / "live")
    try:
        _use(server)
        run_cli("backup", *home.args(db_url), "--out", str(tmp_path / "b"))
        twice = run_cli("backup", *home.args(db_url), "--out", str(tmp_path / "b"), check=False)
        assert twice.returncode == 2 and "is not empty" in twice.stderr
    finally:
        server.stop(grace=1)
    done = run_cli("restore", *home.args(db_url), str(tmp_path / "b"), check=False)
    assert done.returncode == 2
    assert "a ledger is there already" in done.stderr or "an empty database" in done.stderr
