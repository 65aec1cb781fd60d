"""Freeze access_decisions: its rows were copied into the access log by
0006, and a server still running older code must not keep writing there
(its records would be in no verifiable log). Such a server fails instead.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER access_decisions_frozen BEFORE INSERT ON access_decisions "
            "BEGIN SELECT RAISE(ABORT, 'access_decisions is frozen: records go to access_log'); END"
        )
        return
    op.execute(
        "CREATE TRIGGER access_decisions_frozen BEFORE INSERT ON access_decisions "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER access_decisions_frozen"
        if op.get_bind().dialect.name == "sqlite"
        else "DROP TRIGGER access_decisions_frozen ON access_decisions"
    )
