"""Access decisions: an append-only table of every allow and deny.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

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
    make_append_only(TABLE, ("id",))


def downgrade() -> None:
    raise NotImplementedError("the access decisions cannot be downgraded: append-only")
