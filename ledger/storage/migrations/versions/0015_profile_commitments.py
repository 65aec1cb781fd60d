"""profile_commitments: the index of the journal's ``profile`` entries by
member (docs/journal-format.md 6.5): one row per entry that committed a
member's field ciphertexts, so a reader finds the newest one in one lookup
and checks the stored fields against it (profile freshness). Append-only:
a commitment is never withdrawn; `loyalty-ledger verify` checks the index
against the journal, so a row deleted to hide a newer commitment is found.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_commitments",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    make_append_only("profile_commitments", ("account_id", "seq"))


def downgrade() -> None:
    raise NotImplementedError("0015 is not reversible")
