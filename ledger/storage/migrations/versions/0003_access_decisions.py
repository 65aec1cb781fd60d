"""Access decisions: an append-only table of every allow and deny.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "access_decisions"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("member_account_id", sa.String(64), nullable=False),
        sa.Column("fields", sa.String(512), nullable=False),
    )
    op.create_index("ix_access_decisions_time", TABLE, ["time_us"])
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END"
            )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE} "
            f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE id = NEW.id) "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END"
        )
        return
    op.execute(
        f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )


def downgrade() -> None:
    raise NotImplementedError("the access decisions cannot be downgraded: append-only")
