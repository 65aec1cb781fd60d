"""SQLite: refuse INSERT OR REPLACE / REPLACE on append-only tables.

REPLACE deletes the conflicting row without firing DELETE triggers (unless a
connection turns recursive_triggers on), so the UPDATE/DELETE triggers of
0001 alone let a REPLACE rewrite a journal row. A BEFORE INSERT trigger that
aborts when the primary key already exists closes that door for every
connection. PostgreSQL has no REPLACE; its INSERT ... ON CONFLICT DO UPDATE
fires the UPDATE triggers of 0001.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PRIMARY_KEYS = {
    "journal_entries": ("seq",),
    "journal_postings": ("seq", "idx"),
    "account_entries": ("account_id", "seq"),
    "idempotency_keys": ("channel_id", "idempotency_key"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, key in PRIMARY_KEYS.items():
        same = " AND ".join(f"{c} = NEW.{c}" for c in key)
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {same}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def downgrade() -> None:
    raise NotImplementedError("the journal cannot be downgraded: it is append-only")
