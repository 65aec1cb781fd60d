"""The two verifiable logs, grown inside the appender's transaction.

The journal's entries are written by the planner; this module adds their
Merkle tree nodes. The access log is written here entirely: each access
decision becomes a hash-chained record (audit/access_format.py) and a
leaf of the access tree. Both trees keep only their right edge in memory
(``audit.merkle.Frontier``), valid while the log's head is the one this
appender wrote last; otherwise the edge is reloaded from the stored nodes
(O(log n) reads). A failed transaction drops both edges.

Invariants checked on every append (as for the journal, see
ledger/planner/): access-log sequence = previous + 1, prev_hash =
previous record's hash, time never goes backwards; tree size = head
sequence after every transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa

from audit.access_format import TEXT_FIELDS, AccessRecord
from audit.decisions import AccessDecision
from audit.entry_format import JournalEntry
from audit.merkle import Frontier, NodeKey, leaf_hash
from ledger.storage import journal_writes as sql
from ledger.storage.schema import access_log

JOURNAL_LOG = 1
ACCESS_LOG = 2
# column widths of access_log (characters): longer values are cut before
# hashing, so the stored row is exactly what was hashed
WIDTHS: dict[str, int] = {
    name: cast(sa.String, access_log.c[name].type).length or 0 for name in TEXT_FIELDS
}


@dataclass(slots=True)
class _Tree:
    head: tuple[int, bytes]  # (size, hash of the last entry) the edge belongs to
    edge: Frontier


def _copy(edge: Frontier) -> Frontier:
    return Frontier(edge.size, [(level, h) for (level, _), h in edge.hashes()])


def _clean(value: str, width: int) -> str:
    return value.replace("\x00", "\ufffd")[:width]


class MerkleLogs:
    def __init__(self) -> None:
        self._trees: dict[int, _Tree] = {}
        self._pending: dict[int, _Tree] = {}

    def begin(self) -> None:
        self._pending = {}

    def forget(self) -> None:
        """After a rollback: nothing cached is known to be on disk."""
        self._trees.clear()
        self._pending = {}

    def _edge(self, tx: sql.WriteTx, log: int, head: tuple[int, bytes]) -> Frontier:
        tree = self._trees.get(log)
        if tree is not None and tree.head == head:
            return _copy(tree.edge)
        return Frontier.load(head[0], lambda key: sql.read_node(tx, log, key))

    def grow_journal(
        self,
        tx: sql.WriteTx,
        before: tuple[int, bytes],
        entries: Sequence[tuple[JournalEntry, bytes]],
        leaves: Sequence[bytes],
    ) -> tuple[int, bytes]:
        """Tree nodes for the journal entries the planner appended after
        head ``before`` (``leaves``: their canonical bytes); returns the new
        head."""
        edge = self._edge(tx, JOURNAL_LOG, before)
        nodes: list[tuple[NodeKey, bytes]] = []
        for data in leaves:
            nodes += edge.append(leaf_hash(data))
        sql.insert_nodes(tx, JOURNAL_LOG, nodes)
        head = (entries[-1][0].sequence, entries[-1][1]) if entries else before
        self._pending[JOURNAL_LOG] = _Tree(head, edge)
        return head

    def append_access(self, tx: sql.WriteTx, decisions: Sequence[AccessDecision]) -> None:
        """Append one record per decision to the access log."""
        seq, prev, time_us = sql.read_access_head(tx)
        edge = self._edge(tx, ACCESS_LOG, (seq, prev))
        rows, nodes = [], []
        for decision in decisions:
            seq += 1
            time_us = max(time_us, decision.time_us)
            record = AccessRecord(
                seq,
                time_us,
                prev,
                *(_clean(str(getattr(decision, name)), w) for name, w in WIDTHS.items()),
            )
            data = record.encode()
            digest = record.compute_hash()
            rows.append((record, digest))
            nodes += edge.append(leaf_hash(data))
            prev = digest
        sql.insert_access(tx, rows)
        sql.insert_nodes(tx, ACCESS_LOG, nodes)
        sql.write_access_head(tx, seq, prev, time_us)
        self._pending[ACCESS_LOG] = _Tree((seq, prev), edge)

    def committed(self) -> None:
        """The transaction committed: the new edges are the cached ones."""
        self._trees.update(self._pending)
        self._pending = {}
