"""journal_entries gains request: the keyed digest of the channel and
idempotency key of the request that made the entry (entry format v2,
docs/journal-format.md section 2.1), unique, so that a request credited
twice (its idempotency row deleted, the request replayed) is refused by
the writer and visible to both verifiers. NULL for entries made before
and for entries the ledger makes by itself (format v1).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (not a batch copy), so the append-only triggers stay
    op.add_column("journal_entries", sa.Column("request", sa.LargeBinary(16), nullable=True))
    op.create_index("ux_journal_entries_request", "journal_entries", ["request"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("0013 is not reversible")
