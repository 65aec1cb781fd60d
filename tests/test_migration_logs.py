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
OTHER = "mbr_" + "d" * 26


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


def test_accounts_from_before_data_keys_get_one_once(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An account opened before migration 0004 gets its first data key when
    a server starts, so its new entries' details are sealed; the scan is
    recorded as done and not repeated."""
    import grpc
    from loyalty.ledger.v1 import ledger_pb2 as pb
    from loyalty.ledger.v1 import ledger_pb2_grpc

    from ledger.config import ServerConfig
    from ledger.server import LedgerServer
    from ledger.storage.members import task_done
    from tests.conftest import ctx, key

    db = open_database(db_url)
    try:
        upgrade(db, "0003")
        with db.writer.begin() as conn:
            conn.execute(sa.text("INSERT INTO accounts VALUES (:a, 0, 0, 1000)"), {"a": MEMBER})
        config = ServerConfig(
            data_dir=tmp_path,
            database_url=db_url,
            listen="127.0.0.1:0",
            auth="none",
            plaintext=True,
        )
        for start in range(2):
            if start == 1:  # a row without a key now: the done scan must not come back
                with db.writer.begin() as conn:
                    conn.execute(
                        sa.text(
                            "INSERT INTO accounts (account_id, balance, last_seq, opened_us)"
                            " VALUES (:a, 0, 0, 1000)"
                        ),
                        {"a": OTHER},
                    )
            server = LedgerServer(config)
            server.start()
            try:
                with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    earned = ledger_pb2_grpc.LedgerServiceStub(channel).Earn(
                        pb.EarnRequest(
                            idempotency_key=key(),
                            context=ctx(store_id="store-0001"),
                            member_account_id=MEMBER,
                            points=5,
                        )
                    )
                assert earned.entry.details[0] == 0x02  # sealed under the new key
            finally:
                server.stop(grace=1)
            assert task_done(db, "data-key-backfill")
        with db.reader.connect() as conn:
            count = "SELECT COUNT(*) FROM member_keys WHERE account_id = :a"
            assert conn.execute(sa.text(count), {"a": MEMBER}).scalar_one() == 1
            # the second start did not scan the accounts again
            assert conn.execute(sa.text(count), {"a": OTHER}).scalar_one() == 0
    finally:
        db.dispose()


def test_upgrade_indexes_earlier_partner_exchanges(db_url: str) -> None:
    """0012: exchanges made before partner clearing accounts were indexed
    show in GetLiability's gross flows after the upgrade."""
    from ledger.service.liability import liability_message
    from ledger.storage.journal_reads import JournalReads

    db = open_database(db_url)
    try:
        upgrade(db, "0011")
        with db.writer.begin() as conn:
            rows = [  # seq, from, to, points
                (1, PROGRAM_ISSUED, MEMBER, 900),
                (2, MEMBER, "partner:hotel-test", 400),
                (3, "partner:hotel-test", MEMBER, 70),
                (4, MEMBER, "partner:bike-test", 100),
            ]
            for seq, source, target, points in rows:
                conn.execute(
                    sa.text("INSERT INTO journal_postings VALUES (:s, 0, :f, :t, :p)"),
                    {"s": seq, "f": source, "t": target, "p": points},
                )
        upgrade(db)
        with db.reader.connect() as conn:
            indexed = conn.execute(
                sa.text("SELECT account_id, seq FROM account_entries ORDER BY account_id, seq")
            ).all()
        assert [tuple(r) for r in indexed] == [
            ("partner:bike-test", 4),
            ("partner:hotel-test", 2),
            ("partner:hotel-test", 3),
        ]
        gross = liability_message(JournalReads(db.reader).liability()).by_partner_gross
        assert [(g.partner, g.exchanged_out, g.exchanged_in) for g in gross] == [
            ("bike-test", 100, 0),
            ("hotel-test", 400, 70),
        ]
    finally:
        db.dispose()
