"""Verify the journal stored in a database: the hash chain, the postings,
and the materialized balances against a replay (audit/chain.py)."""

from __future__ import annotations

import sqlalchemy as sa

from audit.chain import VerificationResult, check_chain
from ledger.storage.database import Database
from ledger.storage.journal_reads import JournalReads, read_balances, read_head, walk


class JournalMissingError(Exception):
    """The database holds no journal (wrong URL, or never migrated)."""


def verify_database(db: Database) -> VerificationResult:
    """Check everything, in one consistent snapshot; never raises on a bad journal."""
    tables = set(sa.inspect(db.reader).get_table_names())
    missing = {"journal_entries", "journal_postings", "journal_head", "accounts"} - tables
    if missing:
        raise JournalMissingError(f"no journal in this database: missing tables {sorted(missing)}")
    reads = JournalReads(db.reader)
    with reads.snapshot() as conn:
        head = read_head(conn)
        balances = read_balances(conn)
        return check_chain(walk(conn), head=head, balances=balances)
