"""Members (encrypted personal data), erasures and break-glass grants.

Mutable (personal data must be erasable): member_keys (wrapped data keys,
rewrapped on KEK rotation, deleted on erasure), member_fields (one AEAD
ciphertext per field), member_lookup (blind-index tokens). Append-only:
member_erasures, break_glass_grants, break_glass_ends. accounts gains
closed_us: non-zero once the member is erased.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY = {
    "member_erasures": ("account_id",),
    "break_glass_grants": ("grant_id",),
    "break_glass_ends": ("grant_id",),
}


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("closed_us", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "member_keys",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("dek_version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_member_keys_kek_version", "member_keys", ["kek_version"])
    op.create_table(
        "member_fields",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("field", sa.String(32), primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "member_lookup",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("token", sa.LargeBinary(16), primary_key=True),
        sa.Column("account_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_member_lookup_account", "member_lookup", ["account_id"])
    op.create_table(
        "member_erasures",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("erased_us", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("forfeit_seq", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "break_glass_grants",
        sa.Column("grant_id", sa.String(32), primary_key=True),
        sa.Column("grantee", sa.String(128), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("starts_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "break_glass_ends",
        sa.Column("grant_id", sa.String(32), primary_key=True),
        sa.Column("ended_us", sa.BigInteger, nullable=False),
        sa.Column("ended_by", sa.String(128), nullable=False),
    )
    for table, key in APPEND_ONLY.items():
        make_append_only(table, key)


def downgrade() -> None:
    raise NotImplementedError("erasures and break-glass records are append-only")
