"""Reads of the two verifiable logs: heads, tree nodes, canonical entry
bytes, and the stored checkpoints (the one write here: a new checkpoint).

Tree nodes and entries are append-only, so a node or an entry read after
its head is the one the head covers; no snapshot is needed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.access_format import TEXT_FIELDS, AccessRecord
from audit.merkle import NodeKey
from ledger.errors import IntegrityError
from ledger.merkle_logs import ACCESS_LOG, JOURNAL_LOG
from ledger.storage.database import Database
from ledger.storage.journal_reads import _entries_between
from ledger.storage.schema import access_head, access_log, checkpoints, cosignatures, journal_head


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    log: int
    size: int
    root: bytes
    note: str
    created_us: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    sequence: int
    data: bytes  # canonical bytes (the Merkle leaf data)
    stored_hash: bytes
    channel_id: str  # journal entries; "" for access records


def _checkpoint(row: sa.Row[tuple[int, int, bytes, str, int]]) -> StoredCheckpoint:
    return StoredCheckpoint(row.log, row.size, bytes(row.root), row.note, row.created_us)


class LogReads:
    def __init__(self, db: Database) -> None:
        self._db = db

    def head(self, log: int) -> tuple[int, bytes]:
        """(size, hash of the last entry)."""
        table = journal_head if log == JOURNAL_LOG else access_head
        with self._db.reader.connect() as conn:
            row = conn.execute(sa.select(table.c.seq, table.c.hash).where(table.c.id == 1)).one()
        return int(row.seq), bytes(row.hash)

    def nodes(self, log: int, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        """The stored nodes ``keys``: one primary-key lookup per level (an
        O(log n) handful, on one connection; a row-value IN list or an OR of
        them makes SQLite scan the table)."""
        found: dict[NodeKey, bytes] = {}
        by_level: dict[int, list[int]] = {}
        for level, idx in keys:
            by_level.setdefault(level, []).append(idx)
        with self._db.reader.connect() as conn:
            mark = "?" if conn.dialect.name == "sqlite" else "%s"
            for level, idxs in by_level.items():  # fixed SQL: the statement layer costs more
                rows = conn.exec_driver_sql(
                    f"SELECT idx, hash FROM merkle_nodes WHERE log = {mark} AND level = {mark}"
                    f" AND idx IN ({', '.join([mark] * len(idxs))})",
                    (log, level, *idxs),
                )
                found.update({(level, idx): bytes(h) for idx, h in rows})
        missing = [k for k in keys if k not in found]
        if missing:
            raise IntegrityError(f"merkle tree: nodes missing from log {log}, e.g. {missing[:3]}")
        return found

    def entries(self, log: int, first: int, last: int) -> list[LogEntry]:
        """Entries ``first..last`` (inclusive) as canonical bytes."""
        with self._db.reader.connect() as conn:
            if log == JOURNAL_LOG:
                return [
                    LogEntry(s.entry.sequence, s.entry.encode(), s.stored_hash, s.entry.channel_id)
                    for s in _entries_between(conn, first, last)
                ]
            return list(_access_entries(conn, first, last))

    def latest_checkpoint(self, log: int) -> StoredCheckpoint | None:
        with self._db.reader.connect() as conn:
            row = conn.execute(
                sa.select(checkpoints)
                .where(checkpoints.c.log == log)
                .order_by(checkpoints.c.size.desc())
                .limit(1)
            ).first()
        return _checkpoint(row) if row is not None else None

    def checkpoint(self, log: int, size: int) -> StoredCheckpoint | None:
        with self._db.reader.connect() as conn:
            row = conn.execute(
                sa.select(checkpoints).where(checkpoints.c.log == log, checkpoints.c.size == size)
            ).first()
        return _checkpoint(row) if row is not None else None

    def checkpoints(self, log: int, upto: int) -> list[StoredCheckpoint]:
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                sa.select(checkpoints)
                .where(checkpoints.c.log == log, checkpoints.c.size <= upto)
                .order_by(checkpoints.c.size)
            ).all()
        return [_checkpoint(r) for r in rows]

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> StoredCheckpoint:
        """Store a checkpoint; if one of that size exists already (another
        server signed it first), that one is returned instead."""
        try:
            with self._db.writer.begin() as conn:
                existing = conn.execute(
                    sa.select(checkpoints).where(
                        checkpoints.c.log == checkpoint.log, checkpoints.c.size == checkpoint.size
                    )
                ).first()
                if existing is not None:
                    return _checkpoint(existing)
                conn.execute(
                    sa.insert(checkpoints).values(
                        log=checkpoint.log,
                        size=checkpoint.size,
                        root=checkpoint.root,
                        note=checkpoint.note,
                        created_us=checkpoint.created_us,
                    )
                )
        except sa.exc.IntegrityError:  # PostgreSQL: raced with another server
            found = self.checkpoint(checkpoint.log, checkpoint.size)
            if found is None:
                raise
            return found
        return checkpoint

    def add_cosignature(self, log: int, size: int, witness: str, line: str, now_us: int) -> None:
        """Keep a witness's (verified) cosignature; one per witness and size."""
        try:
            with self._db.writer.begin() as conn:
                conn.execute(
                    sa.insert(cosignatures).values(
                        log=log, size=size, witness=witness, line=line, created_us=now_us
                    )
                )
        except sa.exc.IntegrityError:  # stored already (another server, or a retry)
            pass

    def cosignatures(self, log: int, size: int) -> dict[str, str]:
        """witness name -> its cosignature line of that checkpoint."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                sa.select(cosignatures.c.witness, cosignatures.c.line).where(
                    cosignatures.c.log == log, cosignatures.c.size == size
                )
            ).all()
        return {w: line for w, line in rows}

    def cosigned_size(self, log: int, witness: str) -> int:
        """The largest size this witness cosigned (0: none)."""
        with self._db.reader.connect() as conn:
            size = conn.execute(
                sa.select(sa.func.max(cosignatures.c.size)).where(
                    cosignatures.c.log == log, cosignatures.c.witness == witness
                )
            ).scalar()
        return int(size or 0)


def _access_entries(conn: Connection, first: int, last: int) -> Iterator[LogEntry]:
    rows = conn.execute(
        sa.select(access_log)
        .where(access_log.c.seq.between(first, last))
        .order_by(access_log.c.seq)
    )
    for r in rows:
        record = AccessRecord(
            r.seq, r.time_us, bytes(r.prev_hash), *(str(getattr(r, c)) for c in TEXT_FIELDS)
        )
        yield LogEntry(r.seq, record.encode(), bytes(r.hash), "")


__all__ = ["ACCESS_LOG", "JOURNAL_LOG", "LogEntry", "LogReads", "StoredCheckpoint"]
