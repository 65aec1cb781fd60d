"""Rewards and vouchers (docs/program-rules.md §11).

vouchers: one row per voucher_issue entry (its sequence), append-only.
voucher_ends: how a voucher ended (redeemed, expired, cancelled), append-only
with the voucher's sequence as primary key, so it ends once even when two
appenders race. reward_stock: vouchers taken per reward (issued, not
cancelled or expired), updated in the batch that changes it.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vouchers",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("reward_id", sa.String(40), nullable=False),
        sa.Column("valid_until_us", sa.BigInteger, nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_vouchers_owner", "vouchers", ["owner"])
    op.create_index("ix_vouchers_valid_until", "vouchers", ["valid_until_us"])
    op.create_table(
        "voucher_ends",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end_seq", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_table(
        "reward_stock",
        sa.Column("reward_id", sa.String(40), primary_key=True),
        sa.Column("taken", sa.BigInteger, nullable=False),
    )
    make_append_only("vouchers", ("seq",))
    make_append_only("voucher_ends", ("seq",))


def downgrade() -> None:
    raise NotImplementedError("0016 is not reversible")
