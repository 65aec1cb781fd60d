"""The triggers that make a table append-only, for the migrations that
create such tables (0003 onwards; 0001 and 0002 spell theirs out).

SQLite: BEFORE UPDATE and BEFORE DELETE abort, and a BEFORE INSERT aborts
when the primary key exists already (REPLACE would otherwise delete the old
row without firing the DELETE trigger, see 0002). PostgreSQL: one row
trigger for UPDATE and DELETE and one statement trigger for TRUNCATE, both
calling ledger_refuse_change() from 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


def make_append_only(table: str, key: Sequence[str]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        same = " AND ".join(f"{c} = NEW.{c}" for c in key)
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {same}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )
        return
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )
