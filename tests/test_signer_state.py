"""A DBA without the keyring cannot get the real key to sign a rewrite
(issue #13, item 1). The signer remembers, outside the database, the last
checkpoint it signed per log (ledger/signer_state.py); every attack below
deletes the ``checkpoints`` rows the database kept (so the database holds
no memory of them) and then asks the server to sign: over gRPC
(CreateCheckpoint), on its schedule, and through ``audit export``.

Attacks, each on SQLite and PostgreSQL: the database rolled back to an
older copy; the older copy then grown with a different history (a fork,
as a forged entry mid-log with the tree recomputed is); another server's
database, larger than what was signed. And: the genuine database whose
checkpoint rows were lost still signs; a damaged state file stops signing;
a witness that saw a larger tree stops signing.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from loyalty.audit.v1 import audit_pb2 as upb
from loyalty.audit.v1 import audit_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.config import ServerConfig
from ledger.errors import IntegrityError
from ledger.server import LedgerServer
from tests.conftest import ctx, key
from tests.support.process import cli_path
from tests.test_tamper import _drop_triggers

LOGS = (upb.LOG_JOURNAL, upb.LOG_ACCESS)


class Ledger:
    """A server on ``url`` with one keyring and signer state kept in ``keys``."""

    def __init__(self, url: str, data_dir: Path, keys: Path, **extra: object) -> None:
        self.url, self.data_dir, self.keys = url, data_dir, keys
        self.config = ServerConfig(
            data_dir=data_dir,
            database_url=url,
            listen="127.0.0.1:0",
            auth="none",
            plaintext=True,
            keyring=keys / "keyring.json",
            **extra,  # type: ignore[arg-type]
        )
        self.server = LedgerServer(self.config)
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)

    def earns(self, n: int, points: int = 5) -> None:
        account = self.stub.OpenAccount(
            pb.OpenAccountRequest(idempotency_key=key("open"), context=ctx())
        ).member_account_id
        for _ in range(n):
            self.stub.Earn(
                pb.EarnRequest(
                    idempotency_key=key(), context=ctx(), member_account_id=account, points=points
                )
            )

    def checkpoint(self, log: int = upb.LOG_JOURNAL) -> upb.Checkpoint:
        return self.audit.CreateCheckpoint(upb.CreateCheckpointRequest(log=log))

    def refused(self, log: int = upb.LOG_JOURNAL) -> str:
        with pytest.raises(grpc.RpcError) as err:
            self.checkpoint(log)
        assert err.value.code() == grpc.StatusCode.DATA_LOSS, err.value.details()
        return err.value.details() or ""

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=1)


def _forget_checkpoints(url: str) -> None:
    """What the DBA does first: the database keeps no memory of what was signed."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _drop_triggers(conn)  # the owner's DBA can
        conn.execute(sa.text("DELETE FROM checkpoints"))
    engine.dispose()


def _snapshot(url: str, data_dir: Path, name: str) -> str:
    """A copy of the (stopped) server's database; returns its URL."""
    if url.startswith("sqlite"):
        source = Path(url.removeprefix("sqlite:///"))
        target = data_dir.parent / name
        target.mkdir()
        for f in source.parent.glob(source.name + "*"):
            shutil.copy2(f, target / f.name)
        return f"sqlite:///{target / source.name}"
    base, dbname = url.rsplit("/", 1)
    copy = "s_" + uuid.uuid4().hex[:16]
    dsn = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{dbname}"')
    return f"{base}/{copy}"


def _export(ledger: Ledger, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            cli_path(),
            "--log-level",
            "error",
            "audit",
            "export",
            "--data-dir",
            str(ledger.data_dir),
            "--database-url",
            url,
            "--keyring",
            str(ledger.keys / "keyring.json"),
            "--out",
            str(ledger.data_dir / "bundle.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "keys"
    path.mkdir()
    yield path


def test_a_rolled_back_database_is_never_signed(db_url: str, tmp_path: Path, keys: Path) -> None:
    data = tmp_path / "data"
    ledger = Ledger(db_url, data, keys)
    try:
        ledger.earns(3)
        old = {log: ledger.checkpoint(log).tree_size for log in LOGS}
    finally:
        ledger.close()
    older_copy = _snapshot(db_url, data, "older")
    ledger = Ledger(db_url, data, keys)
    try:
        ledger.earns(3)
        signed = ledger.checkpoint()
        assert signed.tree_size == old[upb.LOG_JOURNAL] + 3
        ledger.checkpoint(upb.LOG_ACCESS)
    finally:
        ledger.close()
    assert (keys / "signer-state").is_dir()

    # the DBA puts the older copy in place and deletes its checkpoint rows
    _forget_checkpoints(older_copy)
    ledger = Ledger(older_copy, data, keys)
    try:
        for log in LOGS:
            assert "fewer than" in ledger.refused(log)
        exported = _export(ledger, older_copy)
        assert exported.returncode == 2, exported.stdout + exported.stderr
        assert "refusing to sign" in exported.stderr
        assert not (data / "bundle.jsonl").exists() or not (data / "bundle.jsonl").stat().st_size

        # grown past the signed size with another history: a fork
        ledger.earns(6, points=9)
        for log in LOGS:
            assert "not an extension" in ledger.refused(log)
        assert _export(ledger, older_copy).returncode == 2
    finally:
        ledger.close()


def test_another_servers_database_under_the_same_key_is_never_signed(
    db_url: str, tmp_path: Path, keys: Path, request: pytest.FixtureRequest
) -> None:
    ours = Ledger(db_url, tmp_path / "ours", keys)
    try:
        ours.earns(4)
        for log in LOGS:
            ours.checkpoint(log)
    finally:
        ours.close()
    other_url = (
        f"sqlite:///{tmp_path / 'theirs' / 'ledger.db'}"
        if db_url.startswith("sqlite")
        else request.getfixturevalue("pg_cluster").create_database()
    )
    (tmp_path / "theirs").mkdir()
    # the same keyring, its own (empty) signer state: a history of its own
    theirs = Ledger(other_url, tmp_path / "theirs", keys, signer_state=tmp_path / "elsewhere")
    try:
        theirs.earns(12)
    finally:
        theirs.close()
    _forget_checkpoints(other_url)
    swapped = Ledger(other_url, tmp_path / "theirs", keys)  # the signer's own state
    try:
        for log in LOGS:
            assert "not an extension" in swapped.refused(log)
    finally:
        swapped.close()


def test_lost_checkpoint_rows_of_the_genuine_database_still_sign(
    db_url: str, tmp_path: Path, keys: Path
) -> None:
    ledger = Ledger(db_url, tmp_path / "data", keys)
    try:
        ledger.earns(3)
        first = ledger.checkpoint()
    finally:
        ledger.close()
    _forget_checkpoints(db_url)
    ledger = Ledger(db_url, tmp_path / "data", keys)
    try:
        assert ledger.checkpoint().tree_size == first.tree_size  # signed again, same tree
        ledger.earns(2)
        assert ledger.checkpoint().tree_size == first.tree_size + 2
    finally:
        ledger.close()


def test_a_damaged_state_file_stops_signing(db_url: str, tmp_path: Path, keys: Path) -> None:
    ledger = Ledger(db_url, tmp_path / "data", keys)
    try:
        ledger.earns(2)
        ledger.checkpoint()
        (state,) = (keys / "signer-state").glob("*journal.note")
        state.write_text(state.read_text().replace("\n\n", "\n\n\u2014 x\n"))
        ledger.earns(1)
        assert "signer state" in ledger.refused()
        state.unlink()  # an operator restores or removes it: signing resumes
        assert ledger.checkpoint().tree_size == 3
    finally:
        ledger.close()


def test_a_witness_that_saw_a_larger_tree_stops_signing(
    db_url: str, tmp_path: Path, keys: Path
) -> None:
    witness = tmp_path / "witness"
    data = tmp_path / "data"
    ledger = Ledger(db_url, data, keys, witness_dir=witness)
    try:
        ledger.earns(2)
        ledger.checkpoint()
    finally:
        ledger.close()
    older_copy = _snapshot(db_url, data, "older")
    ledger = Ledger(db_url, data, keys, witness_dir=witness)
    try:
        ledger.earns(2)
        ledger.checkpoint()
    finally:
        ledger.close()
    # the rolled-back copy, with a signer state that forgot too (a restore
    # of the keys directory from the same older backup)
    shutil.rmtree(keys / "signer-state")
    _forget_checkpoints(older_copy)
    ledger = Ledger(older_copy, data, keys, witness_dir=witness)
    try:
        assert "the newest witnessed checkpoint" in ledger.refused()
    finally:
        ledger.close()


def test_rows_rewritten_under_an_intact_tree_are_never_signed_over(
    db_url: str, tmp_path: Path, keys: Path
) -> None:
    from audit.access_format import AccessRecord

    ledger = Ledger(db_url, tmp_path / "data", keys)
    try:
        ledger.earns(2)
        signed = ledger.checkpoint().tree_size
        access_signed = ledger.checkpoint(upb.LOG_ACCESS).tree_size
        ledger.earns(3)
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            _drop_triggers(conn)
            # an earn after the last signature inflated; its hash left alone
            conn.execute(
                sa.text("UPDATE journal_postings SET points = points + 100 WHERE seq = :s"),
                {"s": signed + 2},
            )
            # an access record's purpose rewritten and its hash recomputed
            row = conn.execute(
                sa.text("SELECT * FROM access_log WHERE seq = :s"), {"s": access_signed + 1}
            ).one()
            forged = AccessRecord(
                row.seq,
                row.time_us,
                bytes(row.prev_hash),
                row.request_id,
                row.principal,
                row.role,
                row.method,
                row.decision,
                row.reason,
                "marketing",
                row.member_account_id,
                row.fields,
            )
            conn.execute(
                sa.text("UPDATE access_log SET purpose = 'marketing', hash = :h WHERE seq = :s"),
                {"h": forged.compute_hash(), "s": row.seq},
            )
        engine.dispose()
        details = ledger.refused()
        assert f"entry {signed + 2}: its row does not match its stored hash" in details
        details = ledger.refused(upb.LOG_ACCESS)
        assert f"entry {access_signed + 1}: its row does not match its tree leaf" in details
    finally:
        ledger.close()
    # issue 13, item 4: a writer does not even start on it (it served and
    # took writes on rewritten rows before)
    with pytest.raises(IntegrityError, match=f"entry {signed + 2}: its row does not match"):
        Ledger(db_url, tmp_path / "data", keys)
