"""Points journal: accounts, chain head, entries, postings, history index,
idempotency keys; append-only triggers; program accounts and genesis head.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("journal_entries", "journal_postings", "account_entries", "idempotency_keys")
PROGRAM_ACCOUNTS = ("program:issued", "program:redeemed")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("opened_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_journal_head_single_row"),
    )
    op.create_table(
        "journal_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("reverses", sa.BigInteger, nullable=False),
        sa.Column("details", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_index("ix_journal_entries_reverses", "journal_entries", ["reverses"])
    op.create_table(
        "journal_postings",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("from_account", sa.String(64), nullable=False),
        sa.Column("to_account", sa.String(64), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "account_entries",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    _append_only_triggers()
    op.bulk_insert(
        sa.table(
            "journal_head",
            sa.column("id"),
            sa.column("seq"),
            sa.column("hash"),
            sa.column("time_us"),
        ),
        [{"id": 1, "seq": 0, "hash": bytes(32), "time_us": 0}],
    )
    op.bulk_insert(
        sa.table(
            "accounts",
            sa.column("account_id"),
            sa.column("balance"),
            sa.column("last_seq"),
            sa.column("opened_us"),
        ),
        [{"account_id": a, "balance": 0, "last_seq": 0, "opened_us": 0} for a in PROGRAM_ACCOUNTS],
    )


def _append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        return
    op.execute(
        "CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME "
        "USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )


def downgrade() -> None:
    raise NotImplementedError("the journal cannot be downgraded: it is append-only")
