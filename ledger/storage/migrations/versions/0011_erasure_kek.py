"""member_erasures gains kek_version: the newest KEK version that wrapped
one of the erased member's data keys when they were deleted.

Copies of those wrapped keys can outlive the erasure (a backup, a WAL
archive, a PostgreSQL dead tuple); they stay decryptable while any KEK
version at or below this one is in the keyring. The compliance report
lists erasures still inside that window (docs/field-encryption.md,
"Erasure on disk"). NULL for erasures recorded before this migration or
of members who had no data key.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (not a batch copy), so the append-only triggers stay
    op.add_column("member_erasures", sa.Column("kek_version", sa.Integer, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("0011 is not reversible")
