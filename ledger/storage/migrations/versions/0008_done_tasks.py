"""done_tasks: one-off maintenance a server has finished, so start-up does
not repeat it (e.g. giving accounts from before data keys existed their
first key, which otherwise means scanning every account at each start).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "done_tasks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("done_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("done_tasks")
