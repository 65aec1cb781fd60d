"""journal_head.epoch: moves when a member is erased.

An erasure of a member whose balance is zero appends no journal entry, so
the chain head alone does not tell another server process that an account
was closed. Every erasure increments ``epoch``; appenders cache balances
and closed accounts only while (sequence, hash, epoch) is unchanged.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journal_head") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("journal_head") as batch:
        batch.drop_column("epoch")
