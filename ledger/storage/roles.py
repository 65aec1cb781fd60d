"""PostgreSQL least privilege for the server's own database role.

Triggers refuse UPDATE and DELETE on the journal for everybody, but a
superuser or table owner can drop them. The server should therefore not
connect as the owner: the owner runs migrations, and the server connects as
an application role that was never granted UPDATE, DELETE or TRUNCATE on the
append-only tables, so even with the triggers gone its credentials cannot
rewrite history. ``loyalty-ledger grant-app-role ROLE``, run as the owner,
applies these grants; docs/postgresql.md shows the set-up.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from ledger.errors import ValidationError
from ledger.storage.database import Database
from ledger.storage.schema import APPEND_ONLY_TABLES, COUNTER_TABLES, MEMBER_TABLES

ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# derived from the journal, rewritten on every append
MUTABLE_TABLES = ("accounts", "journal_head", "access_head", *COUNTER_TABLES)


def app_role_grants(role: str) -> list[str]:
    """The statements that give ``role`` exactly what the server needs."""
    if not ROLE_RE.fullmatch(role):
        raise ValidationError("role", "must be a lower-case PostgreSQL identifier")
    statements = [f"GRANT USAGE ON SCHEMA public TO {role}"]
    # append-only tables, and done_tasks (rows are only ever added)
    statements += [
        f"GRANT SELECT, INSERT ON {t} TO {role}" for t in (*APPEND_ONLY_TABLES, "done_tasks")
    ]
    statements += [f"GRANT SELECT, INSERT, UPDATE ON {t} TO {role}" for t in MUTABLE_TABLES]
    # personal data: erasure deletes it
    statements += [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {role}" for t in MEMBER_TABLES]
    statements.append(f"GRANT SELECT ON alembic_version TO {role}")
    return statements


def grant_app_role(db: Database, role: str) -> list[str]:
    if db.is_sqlite:
        raise ValidationError("database_url", "roles and grants exist on PostgreSQL only")
    statements = app_role_grants(role)
    with db.writer.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    return statements
