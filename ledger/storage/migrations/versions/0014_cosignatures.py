"""cosignatures: witnesses' C2SP cosignatures of checkpoints, one row per
(log, size, witness), the signature line as the witness returned it
(verified against the configured witness key before it is stored).
Append-only: a cosignature is evidence, never rewritten; `audit export`
appends them to the checkpoint notes it publishes.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cosignatures",
        sa.Column("log", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("witness", sa.String(128), primary_key=True),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    make_append_only("cosignatures", ("log", "size", "witness"))


def downgrade() -> None:
    raise NotImplementedError("0014 is not reversible")
