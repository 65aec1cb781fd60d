"""Verification of the journal's hash chain and its double-entry invariants.

Invariants checked, entry by entry (the appender enforces the same ones on
every append, see ledger/appender.py):

1. sequence numbers start at 1 and go up by exactly 1 (no gap, no reorder);
2. prev_hash is the hash of the previous entry (32 zero bytes for entry 1);
3. the stored hash is SHA-256 of the entry's canonical encoding;
4. every posting moves a positive amount between two different accounts;
5. no member account (``mbr_...``) is ever negative;
6. time never goes backwards;
7. each kind has its shape (docs/journal-format.md §5.3): the accounts of
   a member family (mbr_X, mbr_X/lot/N, mbr_X/pending/N, mbr_X/held/N, see
   audit/accounts.py) are well formed, and each of earn, redeem, hold,
   capture, release, mature, expire, transfer, exchange_out, exchange_in and
   erase moves points only between the accounts its kind allows; a capture
   or release resolves an open hold exactly once and gives back exactly what
   it held; a reverse returns points of an earlier earn, redeem or capture
   to where they came from, never more than that entry moved per account;
   an erase leaves the member's whole family at 0, after which no entry
   touches any account of that family (it is closed); a profile entry has
   no postings and commits (details 0x03) to an open member's fields;
8. one request, one entry: no two entries (format v2) carry the same
   request digest (a replay whose idempotency record was deleted);
9. at the end: the chain head recorded by the database is the last entry,
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from audit.accounts import (
    FORM_HELD,
    FORM_LEGACY,
    FORM_LOT,
    FORM_PENDING,
    KIND_CAPTURE,
    KIND_EXCHANGE_IN,
    KIND_EXCHANGE_OUT,
    KIND_EXPIRE,
    KIND_HOLD,
    KIND_MATURE,
    KIND_RELEASE,
    KIND_SETTLEMENT,
    KIND_SHORTFALL,
    KIND_TRANSFER,
    KIND_VOUCHER_CANCEL,
    KIND_VOUCHER_EXPIRE,
    KIND_VOUCHER_ISSUE,
    KIND_VOUCHER_REDEEM,
    PROGRAM_EXPIRED,
    PROGRAM_SETTLED,
    SHORTFALL_PREFIX,
    MemberAccount,
    is_issued_account,
    is_partner_account,
    is_shortfall_account,
    is_voucher_account,
    owner_of,
    parse_member_account,
)
from audit.entry_format import (
    GENESIS_PREV_HASH,
    KIND_EARN,
    KIND_ERASE,
    KIND_REDEEM,
    KIND_REVERSE,
    PROGRAM_FORFEITED,
    PROGRAM_REDEEMED,
    EncodingError,
    JournalEntry,
    Posting,
    is_member_account,
)
from audit.profile_format import KIND_PROFILE, ProfileCommitment, ProfileFormatError


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
        ("request", e.request, bytes),
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


# one posting of an entry with its accounts parsed: (index, posting, from, to);
# from/to are None for program accounts
_Parsed = tuple[int, Posting, MemberAccount | None, MemberAccount | None]
# a reversible entry: (kind, owner, account, points left, account, points left, ...)
_Reversible = tuple[str | int, ...]


def _a(kind: str) -> str:
    """``kind`` with its article, for messages."""
    return f"an {kind}" if kind[:1] in ("a", "e", "i", "o", "u") else f"a {kind}"


def _is_available(account: MemberAccount | None) -> bool:
    """mbr_X or mbr_X/lot/N: points the member can spend."""
    return account is not None and account.form in (FORM_LEGACY, FORM_LOT)


def _is_new_lot(account: MemberAccount | None, seq: int, legacy: bool) -> bool:
    """mbr_X/lot/S or mbr_X/pending/S with S the entry's own sequence (or,
    when ``legacy``, the bare mbr_X)."""
    if account is None:
        return False
    if account.form == FORM_LEGACY:
        return legacy
    return account.form in (FORM_LOT, FORM_PENDING) and account.lot == seq


class _Replay:
    """Walks entries in stored order and records what is wrong."""

    def __init__(self) -> None:
        self.result = VerificationResult()
        self.balances: defaultdict[str, int] = defaultdict(int)
        self.prev_seq = 0
        self.prev_hash = GENESIS_PREV_HASH
        self.prev_time_us = 0
        # earn/redeem/capture entries by sequence, with the points left to
        # reverse per account: one small flat tuple per reversible entry
        self.reversible: dict[int, _Reversible] = {}
        # open holds by sequence: held account -> points the hold put in;
        # removed when a capture or release resolves the hold
        self.holds: dict[int, dict[str, int]] = {}
        # open vouchers by sequence: (voucher:<reward>, lot -> points it paid);
        # removed when a redeem, expire or cancel ends the voucher
        self.vouchers: dict[int, tuple[str, dict[str, int]]] = {}
        self.closed: dict[str, int] = {}  # erased member (owner) -> erase sequence
        # member -> its sub-accounts (ids with a "/") in the order first seen,
        # so an erase checks the whole family without scanning every balance
        self.families: dict[str, list[str]] = {}
        # request digests seen (entry format v2), by their first 8 bytes as
        # an int (about 100 bytes per request entry): one request, one entry
        self.requests: dict[int, int] = {}

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
        if entry.request:
            first = self.requests.setdefault(int.from_bytes(entry.request[:8], "big"), seq)
            if first != seq:
                self.problem(
                    seq,
                    "request",
                    f"made by the same request as entry {first} (request digest "
                    f"{entry.request.hex()}): a request applied twice",
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
        if not entry.postings and entry.kind != KIND_PROFILE:
            self.problem(seq, "postings", "entry has no postings")
        for i, posting in enumerate(entry.postings):
            for account in (posting.from_account, posting.to_account):
                if not is_member_account(account):
                    continue
                owner = owner_of(account)
                if owner in self.closed:
                    self.problem(
                        seq,
                        "closed",
                        f"posting {i}: touches {account}, whose member was erased at "
                        f"sequence {self.closed[owner]}",
                    )
                if owner != account and account not in self.balances:
                    family = self.families.setdefault(owner, [])
                    if account not in family[-1:]:  # from == to: seen twice
                        family.append(account)
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
                    seq,
                    "overdraft",
                    f"member account balance below zero: {account} {self.balances[account]}",
                )

    def _kind_rules(self, entry: JournalEntry) -> None:
        """The shape each kind of entry must have (docs/journal-format.md §5.3)."""
        seq, kind = entry.sequence, entry.kind
        if kind == KIND_PROFILE:
            self._profile(entry)
            return
        rule = _RULES.get(kind)
        if rule is None:
            self.problem(seq, "kind", f"unknown entry kind {kind!r}")
            return
        if not entry.postings:
            self.problem(seq, "kind", f"{_a(kind)} entry has at least one posting, got 0")
            return
        usable: list[_Parsed] = []
        for i, posting in enumerate(entry.postings):
            source, target = posting.from_account, posting.to_account
            parsed_from, parsed_to = parse_member_account(source), parse_member_account(target)
            if (parsed_from is None and is_member_account(source)) or (
                parsed_to is None and is_member_account(target)
            ):
                malformed = [
                    account
                    for account, parsed in ((source, parsed_from), (target, parsed_to))
                    if parsed is None and is_member_account(account)
                ]
                self.problem(
                    seq, "kind", f"posting {i}: malformed member account id {', '.join(malformed)}"
                )
            else:
                usable.append((i, posting, parsed_from, parsed_to))
        if kind not in _REFERENCING and entry.reverses != 0:
            self.problem(seq, "kind", f"{_a(kind)} entry cannot reference an entry to reverse")
        rule(self, entry, usable)

    def _profile(self, entry: JournalEntry) -> None:
        """A profile commitment (docs/journal-format.md §6.5): no postings,
        nothing reversed, details 0x03 naming an open member account."""
        seq = entry.sequence
        if entry.postings:
            self.problem(seq, "kind", f"a profile entry has no postings, got {len(entry.postings)}")
        if entry.reverses != 0:
            self.problem(seq, "kind", "a profile entry cannot reference an entry to reverse")
        try:
            commitment = ProfileCommitment.decode(entry.details)
        except ProfileFormatError as exc:
            self.problem(seq, "kind", f"profile entry: {exc}")
            return
        parsed = parse_member_account(commitment.account)
        if parsed is None or parsed.owner != commitment.account:
            self.problem(seq, "kind", "profile entry: names no member account")
        elif commitment.account in self.closed:
            self.problem(
                seq,
                "closed",
                f"profile entry: commits fields of {commitment.account}, whose member was "
                f"erased at sequence {self.closed[commitment.account]}",
            )

    # -- helpers of the rules ------------------------------------------------

    def _shape(
        self,
        seq: int,
        kind: str,
        usable: list[_Parsed],
        shape: str,
        ok: Callable[[Posting, MemberAccount | None, MemberAccount | None], bool],
    ) -> list[_Parsed]:
        """Report every posting that does not have ``shape``; the others."""
        good: list[_Parsed] = []
        for parsed in usable:
            i, posting, source, target = parsed
            if ok(posting, source, target):
                good.append(parsed)
            else:
                self.problem(
                    seq,
                    "kind",
                    f"posting {i}: {_a(kind)} entry moves {shape}, got "
                    f"{posting.from_account} -> {posting.to_account}",
                )
        return good

    def _one(self, seq: int, kind: str, what: str, values: set[str]) -> None:
        if len(values) > 1:
            self.problem(seq, "kind", f"{_a(kind)} entry has one {what}, got {len(values)}")

    def _one_owner(self, seq: int, kind: str, good: list[_Parsed]) -> None:
        owners = {m.owner for _, _, f, t in good for m in (f, t) if m is not None}
        self._one(seq, kind, "owner", owners)

    def _remember(self, seq: int, kind: str, owner: str, amounts: Mapping[str, int]) -> None:
        """A reversible entry as one flat tuple (kind, owner, account, points
        left to reverse, account, points, ...): a tuple is a third of a dict."""
        flat: list[str | int] = [kind, owner]
        for account, points in amounts.items():
            flat += (account, points)
        self.reversible[seq] = tuple(flat)

    def _recall(self, seq: int) -> tuple[str, str, dict[str, int]] | None:
        """(kind, owner, points left per account) of a remembered entry."""
        record = self.reversible.get(seq)
        if record is None:
            return None
        kind, owner, *flat = record
        left = {cast(str, flat[i]): cast(int, flat[i + 1]) for i in range(0, len(flat), 2)}
        return cast(str, kind), cast(str, owner), left

    # -- the rules, one per kind ---------------------------------------------

    def _earn(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_EARN,
            usable,
            f"program:issued[:<rule>] -> mbr_X, mbr_X/lot/{seq} or mbr_X/pending/{seq}",
            lambda p, _, t: is_issued_account(p.from_account) and _is_new_lot(t, seq, True),
        )
        self._one(seq, KIND_EARN, "target", {p.to_account for _, p, _, _ in good})
        taken: defaultdict[str, int] = defaultdict(int)
        for _, posting, _, _ in good:
            if posting.from_account in taken:
                self.problem(
                    seq,
                    "kind",
                    f"an earn entry has one posting per rule, got {posting.from_account} twice",
                )
            taken[posting.from_account] += posting.points
        owner = owner_of(good[0][1].to_account) if good else ""
        self._remember(seq, KIND_EARN, owner, taken)

    def _redeem(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        good = self._shape(
            entry.sequence,
            KIND_REDEEM,
            usable,
            f"an available lot of the member (mbr_X or mbr_X/lot/N) -> {PROGRAM_REDEEMED}",
            lambda p, f, _: _is_available(f) and p.to_account == PROGRAM_REDEEMED,
        )
        self._one_owner(entry.sequence, KIND_REDEEM, good)
        taken: defaultdict[str, int] = defaultdict(int)
        for _, posting, _, _ in good:
            taken[posting.from_account] += posting.points
        self._remember(entry.sequence, KIND_REDEEM, "", taken)

    def _shortfall(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        """A replayed offline redemption beyond the member's points
        (docs/journal-format.md §5.3): the member's available lots and one
        store's shortfall account, all to program:redeemed; not reversible."""
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_SHORTFALL,
            usable,
            f"an available lot of the member or shortfall:<store> -> {PROGRAM_REDEEMED}",
            lambda p, f, _: (
                (_is_available(f) or is_shortfall_account(p.from_account))
                and p.to_account == PROGRAM_REDEEMED
            ),
        )
        self._one_owner(seq, KIND_SHORTFALL, good)
        stores = [p for _, p, _, _ in usable if p.from_account.startswith(SHORTFALL_PREFIX)]
        if len(stores) != 1:
            got = len(stores)
            rule = "a shortfall entry has one store posting (shortfall:<store>)"
            self.problem(seq, "kind", f"{rule}, got {got}")

    def _settlement(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        """A store paid for shortfall points (docs/journal-format.md §5.3):
        one posting program:settled -> shortfall:<store>, and never more than
        the store owed (its account stays at or below zero)."""
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_SETTLEMENT,
            usable,
            f"{PROGRAM_SETTLED} -> shortfall:<store>",
            lambda p, _f, _t: (
                p.from_account == PROGRAM_SETTLED and is_shortfall_account(p.to_account)
            ),
        )
        if len(entry.postings) != 1:
            got = len(entry.postings)
            self.problem(seq, "kind", f"a settlement entry has one posting, got {got}")
        for _, posting, _, _ in good:
            if self.balances[posting.to_account] > 0:
                self.problem(
                    seq,
                    "kind",
                    f"a settlement pays more than {posting.to_account} owed "
                    f"(its balance is {self.balances[posting.to_account]} after it)",
                )

    def _exchange_out(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_EXCHANGE_OUT,
            usable,
            "an available lot of the member (mbr_X or mbr_X/lot/N) -> partner:<id>",
            lambda p, f, _: _is_available(f) and is_partner_account(p.to_account),
        )
        self._one_owner(seq, KIND_EXCHANGE_OUT, good)
        self._one(seq, KIND_EXCHANGE_OUT, "partner", {p.to_account for _, p, _, _ in good})

    def _exchange_in(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_EXCHANGE_IN,
            usable,
            f"partner:<id> -> mbr_X/lot/{seq} or mbr_X/pending/{seq}",
            lambda p, _, t: is_partner_account(p.from_account) and _is_new_lot(t, seq, False),
        )
        self._one(seq, KIND_EXCHANGE_IN, "partner", {p.from_account for _, p, _, _ in good})
        self._one(seq, KIND_EXCHANGE_IN, "target", {p.to_account for _, p, _, _ in good})

    def _transfer(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_TRANSFER,
            usable,
            f"an available lot of the member (mbr_X or mbr_X/lot/N) -> mbr_B/lot/{seq}",
            lambda _, f, t: (
                _is_available(f) and t is not None and t.form == FORM_LOT and t.lot == seq
            ),
        )
        senders = {f.owner for _, _, f, _ in good if f is not None}
        receivers = {t.owner for _, _, _, t in good if t is not None}
        self._one(seq, KIND_TRANSFER, "sending owner", senders)
        self._one(seq, KIND_TRANSFER, "target", {p.to_account for _, p, _, _ in good})
        if senders & receivers:
            self.problem(
                seq, "kind", "a transfer entry moves points to another member, not its own"
            )

    def _hold(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_HOLD,
            usable,
            "the available form of lot N (mbr_X or mbr_X/lot/N) -> mbr_X/held/N",
            lambda _, f, t: (
                f is not None
                and _is_available(f)
                and t is not None
                and t.form == FORM_HELD
                and (t.owner, t.lot) == (f.owner, f.lot)
            ),
        )
        self._one_owner(seq, KIND_HOLD, good)
        held: defaultdict[str, int] = defaultdict(int)
        for _, posting, _, _ in good:
            held[posting.to_account] += posting.points
        self.holds[seq] = dict(held)

    def _capture(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        good = self._resolve(entry, usable, KIND_CAPTURE)
        taken: defaultdict[str, int] = defaultdict(int)
        for _, posting, source, _ in good:
            if posting.to_account == PROGRAM_REDEEMED and source is not None:
                taken[source.available] += posting.points
        self._remember(entry.sequence, KIND_CAPTURE, "", taken)

    def _release(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        self._resolve(entry, usable, KIND_RELEASE)

    def _resolve(self, entry: JournalEntry, usable: list[_Parsed], kind: str) -> list[_Parsed]:
        """A capture or release: its own shape (``kind``), then against its hold
        (``reversal``): the hold is open, and every held account gives back
        exactly what the hold put in."""
        seq = entry.sequence
        captured = " or program:redeemed" if kind == KIND_CAPTURE else ""
        good = self._shape(
            seq,
            kind,
            usable,
            f"mbr_X/held/N -> the available form of lot N{captured}",
            lambda p, f, _: (
                f is not None
                and f.form == FORM_HELD
                and (
                    p.to_account == f.available
                    or (kind == KIND_CAPTURE and p.to_account == PROGRAM_REDEEMED)
                )
            ),
        )
        self._one_owner(seq, kind, good)
        hold = self.holds.pop(entry.reverses, None)
        if hold is None:
            self.problem(
                seq,
                "reversal",
                f"a {kind} names sequence {entry.reverses}, which is no open hold (not an "
                "earlier hold, or already captured or released)",
            )
            return good
        moved: defaultdict[str, int] = defaultdict(int)
        for _, posting, source, _ in usable:  # a wrong target is a kind problem only
            if source is not None and source.form == FORM_HELD:
                moved[posting.from_account] += posting.points
        for account in sorted(set(hold) | set(moved)):
            if moved.get(account, 0) != hold.get(account, 0):
                self.problem(
                    seq,
                    "reversal",
                    f"moves {moved.get(account, 0)} out of {account}, but the hold at sequence "
                    f"{entry.reverses} put {hold.get(account, 0)} into it",
                )
        return good

    def _voucher_issue(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_VOUCHER_ISSUE,
            usable,
            "an available lot of the member (mbr_X or mbr_X/lot/N) -> voucher:<reward>",
            lambda p, f, _: _is_available(f) and is_voucher_account(p.to_account),
        )
        self._one_owner(seq, KIND_VOUCHER_ISSUE, good)
        targets = {p.to_account for _, p, _, _ in good}
        self._one(seq, KIND_VOUCHER_ISSUE, "voucher account", targets)
        paid: defaultdict[str, int] = defaultdict(int)
        for _, posting, _, _ in good:
            paid[posting.from_account] += posting.points
        if len(targets) == 1:
            self.vouchers[seq] = (targets.pop(), dict(paid))

    def _voucher_redeem(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        self._voucher_end(entry, usable, KIND_VOUCHER_REDEEM, PROGRAM_REDEEMED)

    def _voucher_expire(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        self._voucher_end(entry, usable, KIND_VOUCHER_EXPIRE, PROGRAM_EXPIRED)

    def _voucher_cancel(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        self._voucher_end(entry, usable, KIND_VOUCHER_CANCEL, "")

    def _voucher_end(
        self, entry: JournalEntry, usable: list[_Parsed], kind: str, target: str
    ) -> None:
        """A voucher ends once: the issue it names is open, and every point
        it paid into voucher:<reward> leaves in this entry, to ``target``
        (a cancel: back to the lot each point came from, exactly)."""
        seq = entry.sequence
        shape = (
            f"voucher:<reward> -> {target}" if target else "voucher:<reward> -> a lot it came from"
        )
        good = self._shape(
            seq,
            kind,
            usable,
            shape,
            lambda p, _, t: (
                is_voucher_account(p.from_account)
                and (p.to_account == target if target else _is_available(t))
            ),
        )
        voucher = self.vouchers.pop(entry.reverses, None)
        if voucher is None:
            self.problem(
                seq,
                "reversal",
                f"{_a(kind)} names sequence {entry.reverses}, which is no open voucher (not an "
                "earlier voucher_issue, or already redeemed, expired or cancelled)",
            )
            return
        account, paid = voucher
        if len(good) != len(usable):
            return  # a posting of the wrong shape is reported as such, once
        if any(p.from_account != account for _, p, _, _ in good):
            self.problem(seq, "reversal", f"takes points from another account than {account}")
            return
        moved: defaultdict[str, int] = defaultdict(int)
        for _, posting, _, _ in good:
            moved[posting.to_account] += posting.points
        want = dict(paid) if not target else {target: sum(paid.values())}
        wrong = [
            f"{moved.get(key, 0)} to {key} (holds {want.get(key, 0)} for it)"
            for key in sorted(set(want) | set(moved))
            if moved.get(key, 0) != want.get(key, 0)
        ]
        if wrong:
            self.problem(
                seq,
                "reversal",
                f"does not end the voucher at sequence {entry.reverses} as it was paid: "
                "moves " + ", ".join(wrong),
            )

    def _mature(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        good = self._shape(
            entry.sequence,
            KIND_MATURE,
            usable,
            "mbr_X/pending/N -> mbr_X/lot/N",
            lambda _, f, t: (
                f is not None
                and t is not None
                and (f.form, t.form) == (FORM_PENDING, FORM_LOT)
                and (f.owner, f.lot) == (t.owner, t.lot)
            ),
        )
        self._one_owner(entry.sequence, KIND_MATURE, good)

    def _expire(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        good = self._shape(
            entry.sequence,
            KIND_EXPIRE,
            usable,
            f"mbr_X/lot/N (N >= 1) -> {PROGRAM_EXPIRED}",
            lambda p, f, _: (
                f is not None and f.form == FORM_LOT and p.to_account == PROGRAM_EXPIRED
            ),
        )
        self._one_owner(entry.sequence, KIND_EXPIRE, good)

    def _erase(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq = entry.sequence
        good = self._shape(
            seq,
            KIND_ERASE,
            usable,
            f"an account of the member's family -> {PROGRAM_FORFEITED}",
            lambda p, f, _: f is not None and p.to_account == PROGRAM_FORFEITED,
        )
        self._one_owner(seq, KIND_ERASE, good)
        erased = sorted(
            {owner_of(p.from_account) for p in entry.postings if is_member_account(p.from_account)}
        )
        for owner in erased:
            left = [
                f"{account} {self.balances[account]}"
                for account in (owner, *self.families.get(owner, ()))
                if self.balances.get(account, 0) != 0
            ]
            if left:
                self.problem(
                    seq,
                    "kind",
                    "an erase entry leaves every account of the member's family at 0, got: "
                    + ", ".join(left),
                )
            self.closed.setdefault(owner, seq)

    def _reverse(self, entry: JournalEntry, usable: list[_Parsed]) -> None:
        seq, original_seq = entry.sequence, entry.reverses
        record = self._recall(original_seq)
        if record is None:
            self.problem(
                seq,
                "reversal",
                f"reverses sequence {original_seq}, which is no earlier earn, redeem or capture",
            )
            return
        kind, owner, left = record
        if kind == KIND_EARN:
            shape = (
                "an available or pending account of its member -> a program:issued account "
                "the earn took from"
            )
        else:
            shape = f"{PROGRAM_REDEEMED} -> the available form of a lot the {kind} took from"
        returned: defaultdict[str, int] = defaultdict(int)
        for i, posting, source, _ in usable:
            # the keys of ``left`` are the program:issued accounts an earn took
            # from, or the available lots a redeem or capture took from
            if kind == KIND_EARN:
                ok = (
                    source is not None
                    and source.owner == owner
                    and source.form != FORM_HELD
                    and posting.to_account in left
                )
            else:
                ok = posting.from_account == PROGRAM_REDEEMED and posting.to_account in left
            if ok:
                returned[posting.to_account] += posting.points
            else:
                self.problem(
                    seq,
                    "reversal",
                    f"posting {i}: a reversal of the {kind} at sequence {original_seq} moves "
                    f"{shape}, got {posting.from_account} -> {posting.to_account}",
                )
        for account, points in sorted(returned.items()):
            if points > left[account]:
                self.problem(
                    seq,
                    "reversal",
                    f"reverses more than sequence {original_seq} moved for {account}: "
                    f"expected at most {left[account]} left, got {points}",
                )
            left[account] -= points
        self._remember(original_seq, kind, owner, left)

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


_Rule = Callable[[_Replay, JournalEntry, list[_Parsed]], None]
_RULES: dict[str, _Rule] = {
    KIND_EARN: _Replay._earn,
    KIND_REDEEM: _Replay._redeem,
    KIND_REVERSE: _Replay._reverse,
    KIND_ERASE: _Replay._erase,
    KIND_HOLD: _Replay._hold,
    KIND_CAPTURE: _Replay._capture,
    KIND_RELEASE: _Replay._release,
    KIND_MATURE: _Replay._mature,
    KIND_EXPIRE: _Replay._expire,
    KIND_TRANSFER: _Replay._transfer,
    KIND_EXCHANGE_OUT: _Replay._exchange_out,
    KIND_EXCHANGE_IN: _Replay._exchange_in,
    KIND_SHORTFALL: _Replay._shortfall,
    KIND_SETTLEMENT: _Replay._settlement,
    KIND_VOUCHER_ISSUE: _Replay._voucher_issue,
    KIND_VOUCHER_REDEEM: _Replay._voucher_redeem,
    KIND_VOUCHER_EXPIRE: _Replay._voucher_expire,
    KIND_VOUCHER_CANCEL: _Replay._voucher_cancel,
}
# kinds whose ``reverses`` names an earlier entry
_REFERENCING = frozenset(
    {
        KIND_REVERSE,
        KIND_CAPTURE,
        KIND_RELEASE,
        KIND_VOUCHER_REDEEM,
        KIND_VOUCHER_EXPIRE,
        KIND_VOUCHER_CANCEL,
    }
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
