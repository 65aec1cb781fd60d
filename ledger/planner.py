"""Applies a batch of commands to an in-memory view of the ledger.

Pure: the appender loads what the batch needs (chain head, balances of the
accounts involved, the entries being reversed, idempotency records), lets
the planner decide every command in order, then writes what the planner
produced in the same transaction. A command that fails raises before it
changes anything, so it leaves no trace; the others in the batch go on.

Invariants the planner keeps on every append (audit/chain.py checks the same
ones offline):
- sequence = previous sequence + 1 and prev_hash = previous entry's hash;
- time never goes backwards along the chain;
- every posting moves a positive amount between two different accounts, so
  the sum over all accounts stays zero;
- no member account goes below zero;
- an entry is reversed at most up to its own amount, and reversals are not
  themselves reversible;
- one (channel, idempotency key) maps to one request fingerprint forever;
- an erased member's account is closed: its whole balance is forfeited in
  the erase entry, and no later entry touches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from audit.entry_format import JournalEntry, Posting, is_member_account
from ledger.commands import (
    KIND_EARN,
    KIND_ERASE,
    KIND_REDEEM,
    KIND_REVERSE,
    PROGRAM_FORFEITED,
    PROGRAM_ISSUED,
    PROGRAM_REDEEMED,
    AccountOpened,
    Appended,
    Command,
    Earn,
    Enroll,
    EntryDetails,
    Erase,
    MemberErased,
    Outcome,
    Redeem,
    RequestMeta,
    Reverse,
)
from ledger.errors import (
    AccountClosedError,
    ConflictError,
    IdempotencyConflictError,
    InsufficientPointsError,
    NotFoundError,
    NotReversibleError,
    UnavailableError,
)

IdemKey = tuple[str, str]
# details -> the bytes the entry carries (sealed under the member's key);
# raises LedgerError if the member's key cannot be used
DetailsSealer = Callable[[str, EntryDetails], bytes]


# (entry sequence, details of a replayed request) -> whether that entry
# carried those details
SameDetails = Callable[[int, EntryDetails], bool]


def clear_details(member: str, details: EntryDetails) -> bytes:
    return details.encode()


def same_clear_details(sequence: int, details: EntryDetails) -> bool:
    return True  # without the stored entry at hand: trust the fingerprint


@dataclass(slots=True)
class Original:
    """A reversible entry (one posting) and how much of it is reversed already."""

    sequence: int
    kind: str
    posting: Posting
    reversed_points: int


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    channel_id: str
    idempotency_key: str
    fingerprint: bytes
    response: bytes
    sequence: int | None


@dataclass(slots=True)
class Head:
    sequence: int
    hash: bytes
    time_us: int
    epoch: int = 0  # moves on every erasure (journal_head.epoch)


@dataclass(slots=True)
class BatchPlanner:
    head: Head
    now_us: int
    balances: dict[str, int]
    originals: dict[int, Original]
    idempotency: dict[IdemKey, IdempotencyRecord]
    closed: set[str] = field(default_factory=set)  # erased members' accounts
    seal: DetailsSealer = clear_details
    same_details: SameDetails = same_clear_details
    # produced
    start: Head = field(init=False)  # the head before this batch
    entries: list[tuple[JournalEntry, bytes]] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)  # canonical bytes of each entry
    touched: dict[str, int] = field(default_factory=dict)  # account -> last seq
    opened: list[str] = field(default_factory=list)
    new_records: list[IdempotencyRecord] = field(default_factory=list)
    enrolled: list[Enroll] = field(default_factory=list)
    made_details: dict[int, EntryDetails] = field(default_factory=dict)  # seq -> clear details
    lookups: set[tuple[str, bytes]] = field(default_factory=set)  # tokens enrolled in the batch
    erased: list[tuple[Erase, int | None]] = field(default_factory=list)  # (command, seq)

    def __post_init__(self) -> None:
        self.start = Head(self.head.sequence, self.head.hash, self.head.time_us, self.head.epoch)

    def apply(self, command: Command) -> bytes:
        """Decide one command; return its serialized response or raise LedgerError."""
        meta = command.meta
        key = (meta.channel_id, meta.idempotency_key)
        previous = self.idempotency.get(key)
        if previous is not None:
            if previous.fingerprint != meta.fingerprint:
                raise IdempotencyConflictError()
            if (
                isinstance(command, Enroll)
                and command.same_member is not None
                and not command.same_member(previous.response)
            ):
                raise IdempotencyConflictError()
            details = getattr(command, "details", None)
            if (
                isinstance(details, EntryDetails)
                and previous.sequence is not None
                and not self._same(previous.sequence, details)
            ):
                raise IdempotencyConflictError()
            return previous.response
        outcome: Outcome
        if isinstance(command, Earn):
            outcome = self._earn(command)
        elif isinstance(command, Redeem):
            outcome = self._redeem(command)
        elif isinstance(command, Reverse):
            outcome = self._reverse(command)
        elif isinstance(command, Enroll):
            outcome = self._enroll(command)
        else:
            outcome = self._erase(command)
        response = command.render(outcome)
        seq = outcome.entry.sequence if isinstance(outcome, Appended) else None
        if isinstance(outcome, MemberErased) and outcome.sequence:
            seq = outcome.sequence
        self._remember(meta, response, seq)
        return response

    def _same(self, sequence: int, details: EntryDetails) -> bool:
        made = self.made_details.get(sequence)  # an entry of this very batch
        if made is not None:
            return made == details
        return self.same_details(sequence, details)

    def _remember(self, meta: RequestMeta, response: bytes, seq: int | None) -> None:
        record = IdempotencyRecord(
            meta.channel_id, meta.idempotency_key, meta.fingerprint, response, seq
        )
        self.idempotency[(meta.channel_id, meta.idempotency_key)] = record
        self.new_records.append(record)

    def _enroll(self, cmd: Enroll) -> AccountOpened:
        # one member per phone number and per e-mail address: against the
        # committed members (cmd.taken decrypts and compares) and this batch
        clash = next((k for k in cmd.sealed.lookups if k in self.lookups), None)
        taken = clash[0] if clash else (cmd.taken() if cmd.taken else None)
        if taken:
            raise ConflictError(f"profile.{taken}: another member is enrolled with it")
        if cmd.account in self.balances or cmd.account in self.closed:
            # 128 random bits collided: never in practice; nothing was written
            # (the account id is chosen before the batch: ciphertexts bind it)
            raise UnavailableError("member_account_id: generated id is taken; retry")
        self.balances[cmd.account] = 0
        self.opened.append(cmd.account)
        self.enrolled.append(cmd)
        self.lookups.update(cmd.sealed.lookups)
        return AccountOpened(cmd.account)

    def _erase(self, cmd: Erase) -> MemberErased:
        self._require_account(cmd.account)
        balance = self.balances[cmd.account]
        seq = 0
        if balance > 0:
            posting = Posting(cmd.account, PROGRAM_FORFEITED, balance)
            appended = self._append(KIND_ERASE, cmd.meta, 0, posting, EntryDetails(), cmd.account)
            seq = appended.entry.sequence
        self.closed.add(cmd.account)
        self.erased.append((cmd, seq or None))
        self.head.epoch += 1  # tells other appenders their caches are stale
        return MemberErased(cmd.account, balance, seq)

    def _require_account(self, account: str) -> None:
        if account in self.closed:
            raise AccountClosedError()
        if account not in self.balances:
            raise NotFoundError("member_account_id: no such account")

    def _earn(self, cmd: Earn) -> Appended:
        self._require_account(cmd.account)
        posting = Posting(PROGRAM_ISSUED, cmd.account, cmd.points)
        return self._append(KIND_EARN, cmd.meta, 0, posting, cmd.details, cmd.account)

    def _redeem(self, cmd: Redeem) -> Appended:
        self._require_account(cmd.account)
        self._require_funds(cmd.account, cmd.points)
        posting = Posting(cmd.account, PROGRAM_REDEEMED, cmd.points)
        return self._append(KIND_REDEEM, cmd.meta, 0, posting, cmd.details, cmd.account)

    def _reverse(self, cmd: Reverse) -> Appended:
        original = self.originals.get(cmd.original_sequence)
        if original is None:
            raise NotFoundError("original_sequence: no such entry")
        if original.kind not in (KIND_EARN, KIND_REDEEM):
            raise NotReversibleError(
                f"original_sequence: a {original.kind} entry cannot be reversed",
                metadata={"kind": original.kind},
            )
        left = original.posting.points - original.reversed_points
        if left == 0:
            raise NotReversibleError(
                "original_sequence: entry is already fully reversed",
                metadata={"left_to_reverse": "0"},
            )
        points = left if cmd.points is None else cmd.points
        if points > left:
            raise NotReversibleError(
                "points: exceeds what is left to reverse on the entry "
                "(see left_to_reverse in ErrorInfo)",
                metadata={"left_to_reverse": str(left), "requested": str(points)},
            )
        mirror = Posting(original.posting.to_account, original.posting.from_account, points)
        if mirror.from_account in self.closed or mirror.to_account in self.closed:
            raise AccountClosedError("original_sequence")
        self._require_funds(mirror.from_account, points)
        member = next(a for a in (mirror.from_account, mirror.to_account) if is_member_account(a))
        appended = self._append(
            KIND_REVERSE, cmd.meta, original.sequence, mirror, cmd.details, member
        )
        original.reversed_points += points
        return appended

    def _require_funds(self, account: str, points: int) -> None:
        if not is_member_account(account):
            return
        available = self.balances.get(account, 0)
        if available < points:
            raise InsufficientPointsError(available=available, requested=points)

    def _append(
        self,
        kind: str,
        meta: RequestMeta,
        reverses: int,
        posting: Posting,
        details: EntryDetails,
        member: str,
    ) -> Appended:
        head = self.head
        entry = JournalEntry(
            sequence=head.sequence + 1,
            time_us=max(self.now_us, head.time_us),
            prev_hash=head.hash,
            kind=kind,
            channel_id=meta.channel_id,
            reverses=reverses,
            postings=(posting,),
            details=self.seal(member, details) if not details.is_empty() else b"",
        )
        encoded = entry.encode()
        digest = hashlib.sha256(encoded).digest()
        self.entries.append((entry, digest))
        self.leaves.append(encoded)  # the Merkle leaf data, encoded once
        self.made_details[entry.sequence] = details
        if kind in (KIND_EARN, KIND_REDEEM):  # reversible by later commands of the batch
            self.originals[entry.sequence] = Original(entry.sequence, kind, posting, 0)
        self.head = Head(entry.sequence, digest, entry.time_us, head.epoch)
        self.balances[posting.from_account] = (
            self.balances.get(posting.from_account, 0) - posting.points
        )
        self.balances[posting.to_account] = (
            self.balances.get(posting.to_account, 0) + posting.points
        )
        self.touched[posting.from_account] = entry.sequence
        self.touched[posting.to_account] = entry.sequence
        return Appended(entry, digest, member, self.balances[member])
