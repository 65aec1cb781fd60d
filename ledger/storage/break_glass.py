"""Break-glass grants and their ends: two append-only tables.

A grant row is written when an admin grants; an end row when it is ended
or found expired. Neither is ever changed. The access layer's
``BreakGlass`` keeps the live view in memory and reloads it from here at
start-up.
"""

from __future__ import annotations

import sqlalchemy as sa

from access.break_glass import Grant
from ledger.storage.database import Database
from ledger.storage.schema import break_glass_ends, break_glass_grants


class GrantTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> list[Grant]:
        g, e = break_glass_grants, break_glass_ends
        query = sa.select(g, e.c.ended_us, e.c.ended_by).select_from(
            g.outerjoin(e, e.c.grant_id == g.c.grant_id)
        )
        with self._db.reader.connect() as conn:
            return [
                Grant(
                    grant_id=r.grant_id,
                    grantee=r.grantee,
                    granted_by=r.granted_by,
                    reason=r.reason,
                    starts_us=r.starts_us,
                    expires_us=r.expires_us,
                    ended_us=r.ended_us or 0,
                    ended_by=r.ended_by or "",
                )
                for r in conn.execute(query)
            ]

    def save_start(self, grant: Grant) -> None:
        with self._db.writer.begin() as conn:
            conn.execute(
                sa.insert(break_glass_grants).values(
                    grant_id=grant.grant_id,
                    grantee=grant.grantee,
                    granted_by=grant.granted_by,
                    reason=grant.reason,
                    starts_us=grant.starts_us,
                    expires_us=grant.expires_us,
                )
            )

    def save_end(self, grant: Grant) -> bool:
        """Insert the end unless one is recorded (another process may have
        ended or swept the grant first); True if this call recorded it."""
        ended = break_glass_ends.c.grant_id == grant.grant_id
        try:
            with self._db.writer.begin() as conn:
                if conn.execute(sa.select(sa.literal(1)).where(ended)).first():
                    return False
                conn.execute(
                    sa.insert(break_glass_ends).values(
                        grant_id=grant.grant_id, ended_us=grant.ended_us, ended_by=grant.ended_by
                    )
                )
        except sa.exc.IntegrityError:  # PostgreSQL: raced with another process
            return False
        return True
