"""What ``loyalty-ledger verify`` checks beyond the journal's chain (issue 13,
item 4): the access log, the Merkle nodes and the stored checkpoints, from
the database alone (no keys: signatures are the auditor's, `audit verify`).

For each log, walking its rows in order once:
- the access log's records: sequence 1, 2, ... with no gap, each prev_hash
  the previous record's stored hash, each stored hash the SHA-256 of the
  record's canonical bytes, and the head row naming the last record (a
  deleted or rewritten access record fails here; the journal's own rows are
  checked the same way by audit/chain.py);
- the tree recomputed from the rows (RFC 6962 leaves of the canonical
  bytes): at every stored checkpoint's size, its root equals the root the
  checkpoint's note states (and the row's root column), and every stored
  Merkle node equals the one recomputed (nodes rewritten to match forged
  rows, or rows rewritten under intact nodes, fail here).
Memory: O(log n) per log plus a chunk's nodes, the checkpoints excepted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from audit.access_format import decode_record
from audit.entry_format import GENESIS_PREV_HASH, EncodingError
from audit.merkle import Frontier, leaf_hash
from audit.note import Checkpoint, NoteError, split_note
from ledger.checkpoints import LOG_NAMES
from ledger.errors import IntegrityError
from ledger.merkle_logs import ACCESS_LOG, JOURNAL_LOG
from ledger.storage.database import Database
from ledger.storage.log_reads import LogReads

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class LogProblem:
    log: str
    sequence: int | None
    check: str
    message: str

    def __str__(self) -> str:
        where = f"{self.log} log" + (f" at {self.sequence}" if self.sequence else "")
        return f"{where}: {self.check}: {self.message}"


def verify_logs(db: Database) -> tuple[dict[str, int], list[LogProblem]]:
    """(records checked per log, problems)."""
    reads = LogReads(db)
    counts: dict[str, int] = {}
    problems: list[LogProblem] = []
    for log_id in (JOURNAL_LOG, ACCESS_LOG):
        counts[LOG_NAMES[log_id]] = _verify_log(reads, log_id, problems)
    return counts, problems


def _stated(note: str) -> Checkpoint | None:
    try:
        text, _ = split_note(note)
        return Checkpoint.parse(text)
    except (NoteError, ValueError):
        return None


def _verify_log(reads: LogReads, log_id: int, problems: list[LogProblem]) -> int:
    name = LOG_NAMES[log_id]

    def problem(seq: int | None, check: str, message: str) -> None:
        problems.append(LogProblem(name, seq, check, message))

    try:
        size, head_hash = reads.head(log_id)
    except sa.exc.NoResultFound:
        problem(None, "head", "the head row is missing")
        return 0
    stored = {cp.size: cp for cp in reads.checkpoints(log_id, size)}
    for signed in stored.values():
        stated = _stated(signed.note)
        if stated is None or (stated.size, stated.root) != (signed.size, signed.root):
            problem(signed.size, "checkpoint", "the stored root differs from what its note states")
    frontier = Frontier.empty()
    expected, prev = 1, GENESIS_PREV_HASH
    for first in range(1, size + 1, CHUNK):
        try:
            entries = reads.entries(log_id, first, min(size, first + CHUNK - 1))
        except (EncodingError, ValueError, TypeError) as err:  # a row of the wrong type
            problem(first, "encoding", f"rows from {first} cannot be encoded: {err}")
            return frontier.size
        made: dict[tuple[int, int], bytes] = {}
        for entry in entries:
            if entry.sequence != expected:
                problem(expected, "sequence", f"missing: got {entry.sequence} next")
                return frontier.size
            if log_id == ACCESS_LOG:
                if hashlib.sha256(entry.data).digest() != entry.stored_hash:
                    problem(entry.sequence, "hash", "the record does not match its stored hash")
                try:
                    record = decode_record(entry.data)
                except (EncodingError, ValueError) as err:
                    problem(entry.sequence, "encoding", str(err))
                    return frontier.size
                if record.prev_hash != prev:
                    problem(entry.sequence, "chain", "prev_hash is not the previous record's hash")
                prev = entry.stored_hash
            made.update(frontier.append(leaf_hash(entry.data)))
            expected += 1
            cp = stored.get(frontier.size)
            if cp is not None and frontier.root() != cp.root:
                problem(
                    cp.size,
                    "checkpoint",
                    "the rows do not have the root this checkpoint signed: rewritten since",
                )
        # every node these rows complete must be stored as recomputed
        try:
            kept = reads.nodes(log_id, list(made))
        except IntegrityError as err:
            problem(first, "merkle", str(err))
            return frontier.size
        wrong = sorted(k for k, h in made.items() if kept.get(k) != h)
        if wrong:
            level, idx = wrong[0]
            problem(
                None,
                "merkle",
                f"the stored Merkle nodes do not match the rows ({len(wrong)} from entries "
                f"{first}.., e.g. level {level} index {idx})",
            )
    if expected != size + 1:
        problem(
            expected, "sequence", f"the head says {size} records, the table ends at {expected - 1}"
        )
    if log_id == ACCESS_LOG and size and prev != head_hash:
        problem(size, "head", "the head's hash is not the last record's")
    return frontier.size
