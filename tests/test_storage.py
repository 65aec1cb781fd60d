"""Storage set-up: durable SQLite settings, migrations that can run again
and from several processes, and the schema at Alembic's head."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from ledger.cli import main as cli
from ledger.storage.database import open_database
from ledger.storage.migrate import MIGRATIONS, upgrade
from ledger.storage.schema import APPEND_ONLY_TABLES, metadata


def test_sqlite_writer_is_durable_and_takes_the_write_lock(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        with db.writer.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            # BEGIN IMMEDIATE: this transaction already holds the write lock,
            # so a second writer cannot start until it ends
            other = sqlite3.connect(tmp_path / "l.db", timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
    finally:
        db.dispose()


def test_migrations_reach_head_and_run_again(db_url: str) -> None:
    db = open_database(db_url)
    try:
        upgrade(db)
        upgrade(db)  # idempotent: a restart must not fail
        head = ScriptDirectory.from_config(_config()).get_current_head()
        with db.reader.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
            tables = set(sa.inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
        assert set(APPEND_ONLY_TABLES) <= tables
    finally:
        db.dispose()


def test_migrate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--log-level", "error", "migrate", "--data-dir", str(tmp_path / "d")]) == 0
    assert "schema is up to date" in capsys.readouterr().out
    assert (tmp_path / "d" / "ledger.db").exists()


def test_verify_refuses_a_database_without_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert cli(["--log-level", "error", "verify", "--database-url", empty]) == 2
    out = capsys.readouterr().out
    assert "no journal in this database" in out
    # and verify did not create one: it only reads
    engine = sa.create_engine(empty)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def test_commits_leave_the_wal_to_the_background_checkpointer(tmp_path: Path) -> None:
    """With background checkpoints, commits never copy the WAL into the
    database (the main file stays as it was); the checkpointer thread does."""
    import time as _time

    from ledger.storage.database import WalCheckpointer, open_database

    path = tmp_path / "wal.db"
    db = open_database(f"sqlite:///{path}", background_checkpoints=True)
    try:
        with db.writer.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
        before = path.stat().st_size
        for _ in range(40):  # about 2,500 pages: past SQLite's 1,000-page autocheckpoint
            with db.writer.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO t VALUES (randomblob(4000))" + ", (randomblob(4000))" * 63
                )
        assert path.stat().st_size == before  # nothing was checkpointed by a commit
        checkpointer = WalCheckpointer(str(path), interval=0.05)
        checkpointer.start()
        deadline = _time.monotonic() + 10
        while path.stat().st_size == before and _time.monotonic() < deadline:
            _time.sleep(0.05)
        checkpointer.stop()
        assert path.stat().st_size > before + 2_000 * 4096
    finally:
        db.dispose()
