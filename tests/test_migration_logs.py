"""Migration 0006 on a database with history: the journal's tree is built
from the existing entries, and the old access decisions become the first
records of the hash-chained access log, in order."""

from __future__ import annotations

import sqlalchemy as sa

from audit.access_format import AccessRecord
from audit.entry_format import GENESIS_PREV_HASH, KIND_EARN, PROGRAM_ISSUED, JournalEntry, Posting
from audit.merkle import mth, tree_hash
from ledger.storage.database import open_database
from ledger.storage.log_reads import LogReads
from ledger.storage.migrate import upgrade

MEMBER = "mbr_" + "c" * 26


def test_upgrade_builds_trees_for_existing_history(db_url: str) -> None:
    db = open_database(db_url)
    try:
        upgrade(db, "0005")
        entries, prev = [], GENESIS_PREV_HASH
        for seq in range(1, 12):
            entry = JournalEntry(
                seq,
                1_000 + seq,
                prev,
                KIND_EARN,
                "pos-test",
                0,
                (Posting(PROGRAM_ISSUED, MEMBER, 5),),
            )
            prev = entry.compute_hash()
            entries.append(entry)
        with db.writer.begin() as conn:
            for e in entries:
                conn.execute(
                    sa.text("INSERT INTO journal_entries VALUES (:s, :t, :k, :c, 0, :d, :p, :h)"),
                    {
                        "s": e.sequence,
                        "t": e.time_us,
                        "k": e.kind,
                        "c": e.channel_id,
                        "d": e.details,
                        "p": e.prev_hash,
                        "h": e.compute_hash(),
                    },
                )
                conn.execute(
                    sa.text("INSERT INTO journal_postings VALUES (:s, 0, :f, :t, 5)"),
                    {"s": e.sequence, "f": PROGRAM_ISSUED, "t": MEMBER},
                )
            for i in range(7):
                conn.execute(
                    sa.text(
                        "INSERT INTO access_decisions (time_us, request_id, principal, role,"
                        " method, decision, reason, purpose, member_account_id, fields)"
                        " VALUES (:t, :r, 'pos-1', 'channel', '/x/Earn', 'allow', '', '', :m, '')"
                    ),
                    {"t": 2_000 + i, "r": f"req-{i}", "m": MEMBER},
                )
        upgrade(db)
        reads = LogReads(db)
        assert tree_hash(11, lambda keys: reads.nodes(1, keys)) == mth(
            [e.encode() for e in entries]
        )
        assert reads.head(2)[0] == 7
        records = reads.entries(2, 1, 7)
        prev = GENESIS_PREV_HASH
        for i, stored in enumerate(records):
            from audit.access_format import decode_record

            record: AccessRecord = decode_record(stored.data)
            assert (record.sequence, record.request_id, record.prev_hash) == (
                i + 1,
                f"req-{i}",
                prev,
            )
            prev = record.compute_hash()
            assert prev == stored.stored_hash
        assert reads.head(2)[1] == prev
        assert tree_hash(7, lambda keys: reads.nodes(2, keys)) == mth([r.data for r in records])
    finally:
        db.dispose()
