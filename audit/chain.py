"""Verification of the journal's hash chain and its double-entry invariants.

Invariants checked, entry by entry (the appender enforces the same ones on
every append, see ledger/appender.py):

1. sequence numbers start at 1 and go up by exactly 1 (no gap, no reorder);
2. prev_hash is the hash of the previous entry (32 zero bytes for entry 1);
3. the stored hash is SHA-256 of the entry's canonical encoding;
4. every posting moves a positive amount between two different accounts;
5. no member account (``mbr_...``) is ever negative;
6. time never goes backwards;
7. each kind has its shape: earn = program:issued -> member, redeem =
   member -> program:redeemed, reverse = the mirror of an earlier earn or
   redeem, never reversing more than that entry moved; erase = member ->
   program:forfeited of the member's whole balance, after which no entry
   touches that member's account (it is closed);
8. at the end: the chain head recorded by the database is the last entry,
   the materialized balances equal the balances replayed from the journal,
   and they sum to zero.

Two forms, as verification APIs should come: ``check_chain`` returns a
``VerificationResult`` listing every problem (for reports), and
``verify_chain`` raises ``ChainVerificationError`` on the first result that
is not clean (for callers that only need a yes).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from audit.entry_format import (
    GENESIS_PREV_HASH,
    KIND_EARN,
    KIND_ERASE,
    KIND_REDEEM,
    KIND_REVERSE,
    PROGRAM_FORFEITED,
    PROGRAM_ISSUED,
    PROGRAM_REDEEMED,
    EncodingError,
    JournalEntry,
    Posting,
    is_member_account,
)


class ChainVerificationError(Exception):
    """The journal failed verification; ``result`` lists every problem."""

    def __init__(self, result: VerificationResult) -> None:
        first = result.problems[0]
        super().__init__(f"journal verification failed at {first}")
        self.result = result


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: JournalEntry
    stored_hash: bytes
    # the canonical bytes the entry was decoded from, when a reader has them
    # (a bundle): hashed as they are instead of encoding the entry again.
    # decode_entry is strict, so these are exactly encode(entry).
    encoded: bytes | None = None


@dataclass(frozen=True, slots=True)
class Head:
    sequence: int
    hash: bytes


# what a database with its head row deleted (or duplicated) reports as its head
MISSING_HEAD = Head(-1, b"")


def _type_errors(stored: StoredEntry) -> list[str]:
    """Fields whose stored type is wrong (SQLite does not enforce types, so a
    tampered row may hold text where a number belongs)."""
    e = stored.entry
    want: list[tuple[str, object, type | tuple[type, ...]]] = [
        ("sequence", e.sequence, int),
        ("time_us", e.time_us, int),
        ("reverses", e.reverses, int),
        ("kind", e.kind, str),
        ("channel_id", e.channel_id, str),
        ("prev_hash", e.prev_hash, bytes),
        ("details", e.details, bytes),
        ("hash", stored.stored_hash, bytes),
    ]
    for i, p in enumerate(e.postings):
        want += [
            (f"posting {i} from_account", p.from_account, str),
            (f"posting {i} to_account", p.to_account, str),
            (f"posting {i} points", p.points, int),
        ]
    return [
        f"{name} is {type(value).__name__}, expected {kind.__name__}"  # type: ignore[union-attr]
        for name, value, kind in want
        if not isinstance(value, kind) or isinstance(value, bool)
    ]


@dataclass(frozen=True, slots=True)
class Problem:
    sequence: int | None  # None for problems not tied to one entry
    check: str
    message: str

    def __str__(self) -> str:
        where = f"sequence {self.sequence}" if self.sequence is not None else "journal"
        return f"{where}: {self.check}: {self.message}"


@dataclass(slots=True)
class VerificationResult:
    entries: int = 0
    head: Head | None = None
    problems: list[Problem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems

    @property
    def first_bad_sequence(self) -> int | None:
        seqs = [p.sequence for p in self.problems if p.sequence is not None]
        return min(seqs) if seqs else None


class _Replay:
    """Walks entries in stored order and records what is wrong."""

    def __init__(self) -> None:
        self.result = VerificationResult()
        self.balances: defaultdict[str, int] = defaultdict(int)
        self.prev_seq = 0
        self.prev_hash = GENESIS_PREV_HASH
        self.prev_time_us = 0
        # earn/redeem entries by sequence, with the points reversed so far;
        # one small record per reversible entry
        self.reversible: dict[int, tuple[Posting, int]] = {}
        self.closed: dict[str, int] = {}  # erased member account -> erase sequence

    def problem(self, seq: int | None, check: str, message: str) -> None:
        self.result.problems.append(Problem(seq, check, message))

    def feed(self, stored: StoredEntry) -> None:
        wrong = _type_errors(stored)
        if wrong:
            # nothing else about this row can be checked; move past it
            seq = stored.entry.sequence if isinstance(stored.entry.sequence, int) else None
            self.problem(seq, "encoding", "; ".join(wrong))
            self.result.entries += 1
            self.prev_seq = seq if seq is not None else self.prev_seq + 1
            if isinstance(stored.stored_hash, bytes):
                self.prev_hash = stored.stored_hash
            return
        entry = stored.entry
        seq = entry.sequence
        expected = self.prev_seq + 1
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            self.problem(
                expected,
                "sequence",
                f"entry missing: expected sequence {expected}, got {seq} ({missing} absent)",
            )
        elif seq < expected:
            self.problem(seq, "sequence", f"out of order: expected sequence {expected}, got {seq}")
        if entry.prev_hash != self.prev_hash:
            self.problem(
                seq,
                "chain",
                f"prev_hash does not match the hash of sequence {self.prev_seq}: "
                f"expected {self.prev_hash.hex()}, got {entry.prev_hash.hex()}",
            )
        try:
            computed = (
                hashlib.sha256(stored.encoded).digest()
                if stored.encoded is not None
                else entry.compute_hash()
            )
        except EncodingError as exc:
            self.problem(seq, "encoding", str(exc))
        else:
            if computed != stored.stored_hash:
                self.problem(
                    seq,
                    "hash",
                    f"content does not match its hash: expected {stored.stored_hash.hex()}, "
                    f"got {computed.hex()}",
                )
        if entry.time_us < self.prev_time_us:
            self.problem(
                seq,
                "time",
                f"time goes backwards: expected >= {self.prev_time_us}, got {entry.time_us}",
            )
        self._postings(entry)
        self._kind_rules(entry)
        self.result.entries += 1
        self.prev_time_us = entry.time_us
        self.prev_seq = seq
        self.prev_hash = stored.stored_hash

    def _postings(self, entry: JournalEntry) -> None:
        seq = entry.sequence
        if not entry.postings:
            self.problem(seq, "postings", "entry has no postings")
        for i, posting in enumerate(entry.postings):
            for account in (posting.from_account, posting.to_account):
                if account in self.closed:
                    self.problem(
                        seq,
                        "closed",
                        f"posting {i}: touches an account closed by the erasure at "
                        f"sequence {self.closed[account]}",
                    )
            if posting.points <= 0:
                self.problem(
                    seq, "postings", f"posting {i}: points must be > 0, got {posting.points}"
                )
            if posting.from_account == posting.to_account:
                self.problem(seq, "postings", f"posting {i}: moves points to its own account")
            self.balances[posting.from_account] -= posting.points
            self.balances[posting.to_account] += posting.points
        for posting in entry.postings:
            account = posting.from_account
            if is_member_account(account) and self.balances[account] < 0:
                self.problem(
                    seq, "overdraft", f"member account balance below zero: {self.balances[account]}"
                )

    def _kind_rules(self, entry: JournalEntry) -> None:
        """The shape each kind of entry must have (docs/journal-format.md §4)."""
        seq, kind = entry.sequence, entry.kind
        if len(entry.postings) != 1:
            self.problem(
                seq, "kind", f"a {kind} entry has exactly 1 posting, got {len(entry.postings)}"
            )
            return
        posting = entry.postings[0]
        if kind in (KIND_EARN, KIND_REDEEM):
            source, target = (
                (PROGRAM_ISSUED, posting.to_account)
                if kind == KIND_EARN
                else (posting.from_account, PROGRAM_REDEEMED)
            )
            member = posting.to_account if kind == KIND_EARN else posting.from_account
            if (posting.from_account, posting.to_account) != (
                source,
                target,
            ) or not is_member_account(member):
                self.problem(seq, "kind", f"a {kind} entry moves points the wrong way")
            if entry.reverses != 0:
                self.problem(seq, "kind", f"a {kind} entry cannot reference an entry to reverse")
            self.reversible[seq] = (posting, 0)
        elif kind == KIND_REVERSE:
            self._reversal(seq, entry.reverses, posting)
        elif kind == KIND_ERASE:
            member = posting.from_account
            if posting.to_account != PROGRAM_FORFEITED or not is_member_account(member):
                self.problem(seq, "kind", "an erase entry moves points the wrong way")
            elif self.balances[member] != 0:
                self.problem(
                    seq,
                    "kind",
                    "an erase entry forfeits the whole balance: expected 0 left, "
                    f"got {self.balances[member]}",
                )
            if entry.reverses != 0:
                self.problem(seq, "kind", "an erase entry cannot reference an entry to reverse")
            self.closed.setdefault(member, seq)
        else:
            self.problem(seq, "kind", f"unknown entry kind {kind!r}")

    def _reversal(self, seq: int, original_seq: int, posting: Posting) -> None:
        original = self.reversible.get(original_seq)
        if original is None:
            self.problem(
                seq,
                "reversal",
                f"reverses sequence {original_seq}, which is no earlier earn or redeem",
            )
            return
        original_posting, reversed_so_far = original
        if (posting.from_account, posting.to_account) != (
            original_posting.to_account,
            original_posting.from_account,
        ):
            self.problem(seq, "reversal", f"does not mirror the posting of sequence {original_seq}")
            return
        total = reversed_so_far + posting.points
        if total > original_posting.points:
            self.problem(
                seq,
                "reversal",
                f"reverses more than sequence {original_seq} moved: expected at most "
                f"{original_posting.points}, got {total}",
            )
        self.reversible[original_seq] = (original_posting, total)

    def finish(self, head: Head | None, materialized: Mapping[str, int] | None) -> None:
        self.result.head = Head(self.prev_seq, self.prev_hash) if self.result.entries else None
        if head is MISSING_HEAD:
            self.problem(None, "head", "the recorded chain head is missing or not unique")
        elif head is not None and (head.sequence, head.hash) != (self.prev_seq, self.prev_hash):
            self.problem(
                None,
                "head",
                "recorded chain head does not match the last entry: expected sequence "
                f"{head.sequence} ({head.hash.hex()}), "
                f"got {self.prev_seq} ({self.prev_hash.hex()})",
            )
        if materialized is None:
            return
        total = sum(materialized.values())
        if total != 0:
            self.problem(None, "zero-sum", f"balances sum to {total}, expected 0")
        for account in sorted(set(materialized) | set(self.balances)):
            want = self.balances.get(account, 0)
            got = materialized.get(account, 0)
            if want != got:
                # account ids are random and hold no personal data
                self.problem(
                    None,
                    "balance",
                    f"materialized balance of {account} differs from the journal: "
                    f"expected {want}, got {got}",
                )


def check_chain(
    entries: Iterable[StoredEntry],
    *,
    head: Head | None = None,
    balances: Mapping[str, int] | None = None,
) -> VerificationResult:
    """Verify every entry and return a result that lists all problems."""
    replay = _Replay()
    for stored in entries:
        replay.feed(stored)
    replay.finish(head, balances)
    return replay.result


def verify_chain(
    entries: Iterable[StoredEntry],
    *,
    head: Head | None = None,
    balances: Mapping[str, int] | None = None,
) -> VerificationResult:
    """Like ``check_chain`` but raises ``ChainVerificationError`` on any problem."""
    result = check_chain(entries, head=head, balances=balances)
    if not result:
        raise ChainVerificationError(result)
    return result
