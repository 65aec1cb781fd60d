"""Tiers and referrals (docs/program-rules.md).

member_stats: what tiers and referrals need to know of a member (matured
purchases, spend, purchases per month, referrals, tier, review date, who
referred them); derived from the journal's earns, erased with the member.
tier_changes: the tier history, append-only.
referrals: who referred whom, with the referred device's keyed token
(never the device id); append-only. referral_refusals: refused referrals
with their reason, for fraud review; append-only.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_stats",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),  # JSON, ledger/program/tiers.py
        sa.Column("review_us", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_member_stats_review", "member_stats", ["review_us"])
    op.create_table(
        "tier_changes",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("from_tier", sa.String(16), nullable=False),
        sa.Column("to_tier", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
    )
    op.create_table(
        "referrals",
        sa.Column("referred", sa.String(64), primary_key=True),
        sa.Column("referrer", sa.String(64), nullable=False),
        sa.Column("device_token", sa.LargeBinary(16), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_referrals_referrer", "referrals", ["referrer", "created_us"])
    op.create_index("ix_referrals_device", "referrals", ["device_token", "created_us"])
    op.create_table(
        "referral_refusals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("referrer", sa.String(64), nullable=False),
        sa.Column("referred", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
    )
    make_append_only("tier_changes", ("account_id", "idx"))
    make_append_only("referrals", ("referred",))
    make_append_only("referral_refusals", ("id",))


def downgrade() -> None:
    raise NotImplementedError("0010 is not reversible")
