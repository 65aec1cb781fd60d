"""Verifiable logs: Merkle nodes for the journal and the access log, the
access log itself (hash chained), its head, and signed checkpoints.

merkle_nodes holds the hash of every complete, aligned subtree of each log
(log 1 = journal, 2 = access log; level 0 = leaf hashes), written as
entries are appended, so roots and proofs need O(log n) reads
(docs/verification.md). access_log replaces access_decisions: the old
table is kept, frozen, and its rows are copied into access_log here, in
id order, with the chain and the tree computed. Existing journal entries
get their tree nodes here too. All new tables but access_head are
append-only.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from audit.access_format import AccessRecord
from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting
from audit.merkle import Frontier, leaf_hash
from ledger.storage.migrations.append_only import make_append_only

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APPEND_ONLY = {
    "merkle_nodes": ("log", "level", "idx"),
    "access_log": ("seq",),
    "checkpoints": ("log", "size"),
}
TEXT = (
    "request_id",
    "principal",
    "role",
    "method",
    "decision",
    "reason",
    "purpose",
    "member_account_id",
    "fields",
)
CHUNK = 5000


def upgrade() -> None:
    op.create_table(
        "merkle_nodes",
        sa.Column("log", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "access_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("member_account_id", sa.String(64), nullable=False),
        sa.Column("fields", sa.String(512), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_index("ix_access_log_time", "access_log", ["time_us"])
    op.create_table(
        "access_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("log", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    for table, key in APPEND_ONLY.items():
        make_append_only(table, key)
    bind = op.get_bind()
    _backfill_journal(bind)
    _copy_access_decisions(bind)


def _insert_nodes(
    bind: sa.Connection, log: int, nodes: list[tuple[tuple[int, int], bytes]]
) -> None:
    if nodes:
        bind.execute(
            sa.text("INSERT INTO merkle_nodes (log, level, idx, hash) VALUES (:l, :v, :i, :h)"),
            [{"l": log, "v": level, "i": idx, "h": h} for (level, idx), h in nodes],
        )


def _backfill_journal(bind: sa.Connection) -> None:
    frontier = Frontier.empty()
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT seq, time_us, prev_hash, kind, channel_id, reverses, details"
                " FROM journal_entries WHERE seq > :after ORDER BY seq LIMIT :n"
            ),
            {"after": last, "n": CHUNK},
        ).all()
        if not rows:
            return
        postings: dict[int, list[Posting]] = {}
        for p in bind.execute(
            sa.text(
                "SELECT seq, from_account, to_account, points FROM journal_postings"
                " WHERE seq > :after AND seq <= :upto ORDER BY seq, idx"
            ),
            {"after": last, "upto": rows[-1].seq},
        ):
            postings.setdefault(p.seq, []).append(Posting(p.from_account, p.to_account, p.points))
        nodes = []
        for r in rows:
            entry = JournalEntry(
                r.seq,
                r.time_us,
                bytes(r.prev_hash),
                r.kind,
                r.channel_id,
                r.reverses,
                tuple(postings.get(r.seq, ())),
                bytes(r.details),
            )
            nodes += frontier.append(leaf_hash(entry.encode()))
        _insert_nodes(bind, 1, nodes)
        last = rows[-1].seq


def _copy_access_decisions(bind: sa.Connection) -> None:
    frontier = Frontier.empty()
    prev, seq, time_us, last_id = GENESIS_PREV_HASH, 0, 0, 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, time_us, " + ", ".join(TEXT) + " FROM access_decisions"
                " WHERE id > :after ORDER BY id LIMIT :n"
            ),
            {"after": last_id, "n": CHUNK},
        ).all()
        if not rows:
            break
        out, nodes = [], []
        for r in rows:
            seq += 1
            time_us = max(time_us, r.time_us)
            record = AccessRecord(seq, time_us, prev, *(str(getattr(r, c)) for c in TEXT))
            digest = record.compute_hash()
            out.append(
                {"seq": seq, "time_us": time_us, "prev_hash": prev, "hash": digest}
                | {c: getattr(r, c) for c in TEXT}
            )
            nodes += frontier.append(leaf_hash(record.encode()))
            prev = digest
        columns = ("seq", "time_us", *TEXT, "prev_hash", "hash")
        bind.execute(
            sa.text(
                f"INSERT INTO access_log ({', '.join(columns)})"
                f" VALUES ({', '.join(':' + c for c in columns)})"
            ),
            out,
        )
        _insert_nodes(bind, 2, nodes)
        last_id = rows[-1].id
    bind.execute(
        sa.text("INSERT INTO access_head (id, seq, hash, time_us) VALUES (1, :s, :h, :t)"),
        {"s": seq, "h": prev, "t": time_us},
    )


def downgrade() -> None:
    raise NotImplementedError("the verifiable logs are append-only")
