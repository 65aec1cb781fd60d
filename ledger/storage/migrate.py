"""Create or upgrade the schema with Alembic, safely from several processes."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from ledger.storage.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x4C4C4D47  # "LLMG": advisory lock id for migrations


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            # several servers may start at once: one migrates, the others wait
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
