"""Lots, pending points and holds (docs/program-rules.md).

accounts gains the member sub-accounts' owner and their lot's terms
(expires_us, matures_us; 0 = never / at once) and due_us, the next time the
sweeper must look at the row (expiry of a lot, end of a return window).
holds and hold_ends are append-only: a hold's timeout, and which entry
resolved it (the primary key makes a hold resolve once).
member_activity keeps each member's last purchase time per category for
follow-up rewards; it is erased with the member.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage.migrations.append_only import make_append_only

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("expires_us", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("matures_us", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("due_us", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("UPDATE accounts SET owner = account_id WHERE account_id LIKE 'mbr\\_%' ESCAPE '\\'")
    op.create_index("ix_accounts_owner", "accounts", ["owner"])
    op.create_index("ix_accounts_due", "accounts", ["due_us"])
    op.create_table(
        "holds",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_holds_owner", "holds", ["owner"])
    op.create_index("ix_holds_expires", "holds", ["expires_us"])
    op.create_table(
        "hold_ends",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end_seq", sa.BigInteger, nullable=False),
    )
    for table in ("holds", "hold_ends"):
        make_append_only(table, ("seq",))
    op.create_table(
        "member_activity",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(40), primary_key=True),
        sa.Column("last_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("0009 is not reversible: lots live in the journal")
