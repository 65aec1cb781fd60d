"""account_entries also indexes partner clearing accounts (partner:<id>):
the entries of each partner's exchanges, so GetLiability can give gross
exchange out and in per partner without scanning every posting. Backfills
the exchanges made before.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO account_entries (account_id, seq)"
        " SELECT DISTINCT account_id, seq FROM ("
        "  SELECT to_account AS account_id, seq FROM journal_postings"
        "   WHERE to_account >= 'partner:' AND to_account < 'partner;'"
        "  UNION SELECT from_account, seq FROM journal_postings"
        "   WHERE from_account >= 'partner:' AND from_account < 'partner;'"
        " ) AS partner_postings"
    )


def downgrade() -> None:
    raise NotImplementedError("0012 is not reversible")
