"""The batch: its in-memory view of the ledger, the dispatcher that hands
each command to its family's module, and how entries are written.

A family's module (ledger/planner/*.py) is functions ``(planner, command)
-> Outcome`` over this state; they change it only through ``post`` /
``append`` / ``move`` and their own fields here, and raise before they
change anything when a command fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit.accounts import KIND_CAPTURE, lot_account, owner_of, pending_account
from audit.entry_format import JournalEntry, Posting, is_member_account
from ledger.commands import (
    KIND_EARN,
    KIND_REDEEM,
    Appended,
    CancelVoucher,
    Capture,
    ClaimReward,
    Command,
    Earn,
    Enroll,
    EntryDetails,
    Erase,
    Exchange,
    Hold,
    MemberErased,
    Outcome,
    Redeem,
    RedeemVoucher,
    Refer,
    Release,
    RequestMeta,
    Reverse,
    Settle,
    SettleShortfall,
    ShortfallSettled,
    Transfer,
    VoucherChanged,
    WriteProfile,
)
from ledger.errors import (
    AccountClosedError,
    IdempotencyConflictError,
    InsufficientPointsError,
    IntegrityError,
    NotFoundError,
)
from ledger.keys.idempotency_digest import request_digest
from ledger.members.freshness import ProfileState
from ledger.planner import (
    due,
    earning,
    exchange,
    holds,
    members,
    referrals,
    reversals,
    shortfalls,
    spending,
    vouchers,
)
from ledger.planner.profiles import write_profile
from ledger.planner.records import (
    SYSTEM,
    DetailsSealer,
    Head,
    IdemKey,
    IdempotencyRecord,
    Original,
    SameDetails,
    clear_details,
    same_clear_details,
)
from ledger.program.config import DEFAULT_PROGRAM, Program
from ledger.program.lots import Family, HoldState, LotTerms
from ledger.program.referrals import ReferralFacts
from ledger.program.vouchers import VoucherEnd, VoucherState

# command type -> the function of its family that decides it
Handler = Callable[["BatchPlanner", Any], Outcome]
HANDLERS: dict[type, Handler] = {
    Earn: earning.earn,
    Hold: holds.hold,
    Capture: holds.resolve,
    Release: holds.resolve,
    Transfer: spending.transfer,
    Exchange: exchange.exchange,
    Redeem: spending.redeem,
    Reverse: reversals.reverse,
    Enroll: members.enroll,
    Erase: members.erase,
    Refer: referrals.refer,
    SettleShortfall: shortfalls.settle_shortfall,
    ClaimReward: vouchers.claim,
    RedeemVoucher: vouchers.redeem,
    CancelVoucher: vouchers.cancel,
}


@dataclass(slots=True)
class BatchPlanner:
    head: Head
    now_us: int
    balances: dict[str, int]  # program and partner accounts
    originals: dict[int, Original]
    idempotency: dict[IdemKey, IdempotencyRecord]
    families: dict[str, Family] = field(default_factory=dict)  # member -> its lots
    holds: dict[int, HoldState] = field(default_factory=dict)  # open holds commands name
    # holds commands name that have ended: hold seq -> (owner, ending seq)
    ended: dict[int, tuple[str, int]] = field(default_factory=dict)
    program: Program = DEFAULT_PROGRAM
    max_points: int = 0  # per entry, for points the program computes; 0: no limit
    seal: DetailsSealer = clear_details
    same_details: SameDetails = same_clear_details
    # entries the journal already holds for requests of this batch whose
    # idempotency record was not found: request digest -> sequence
    applied: dict[bytes, int] = field(default_factory=dict)
    # members whose stored balances disagree with the journal's postings
    # (a DBA edited ``accounts``): they may not spend
    unreconciled: set[str] = field(default_factory=set)
    # members whose profiles the batch writes (ledger/planner/profiles.py)
    profiles: dict[str, ProfileState] = field(default_factory=dict)
    legacy_ok: bool = True  # profiles stored before commitments are not committed yet
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
    profile_writes: list[WriteProfile] = field(default_factory=list)
    commitments: list[tuple[str, int]] = field(default_factory=list)  # (member, profile entry)
    new_holds: list[HoldState] = field(default_factory=list)
    ended_holds: list[tuple[int, int]] = field(default_factory=list)  # (hold seq, ending seq)
    # referrals: facts loaded per (referrer, referred); what this batch decided
    referral_facts: dict[tuple[str, str], ReferralFacts] = field(default_factory=dict)
    new_referrals: list[Refer] = field(default_factory=list)
    refusals: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (referrer, referred, reason)
    tier_changes: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    # vouchers (ledger/planner/vouchers.py): the open ones commands name or
    # that are due, how named ones ended, vouchers taken per reward claimed
    vouchers: dict[int, VoucherState] = field(default_factory=dict)
    ended_vouchers: dict[int, VoucherEnd] = field(default_factory=dict)
    rewards_taken: dict[str, int] = field(default_factory=dict)
    new_vouchers: list[VoucherState] = field(default_factory=list)
    voucher_ends: list[VoucherEnd] = field(default_factory=list)
    stock_deltas: dict[str, int] = field(default_factory=dict)  # reward -> taken +/-
    _request: bytes = b""  # the digest the command being applied puts in its entry

    def __post_init__(self) -> None:
        self.start = Head(self.head.sequence, self.head.hash, self.head.time_us, self.head.epoch)
        for family in self.families.values():
            for hold in family.holds.values():
                self.holds.setdefault(hold.sequence, hold)

    @property
    def closed(self) -> set[str]:
        return {owner for owner, f in self.families.items() if f.closed}

    def balance_of(self, account: str) -> int:
        if is_member_account(account):
            family = self.families.get(owner_of(account))
            return family.accounts.get(account, 0) if family else 0
        return self.balances.get(account, 0)

    # -- commands ---------------------------------------------------------------

    def settle(self, owner: str) -> None:
        """Post what time has made due for ``owner`` (ledger/planner/due.py)."""
        due.settle(self, owner)

    def apply(self, command: Command) -> bytes:
        """Decide one command; return its serialized response or raise LedgerError."""
        self._request = b""
        if isinstance(command, Settle):
            self.settle(command.account)
            return b""
        if isinstance(command, WriteProfile):
            return write_profile(self, command)
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
        request = request_digest(meta)
        if request and request in self.applied:
            # its entry is in the journal but its idempotency record is not:
            # someone deleted it. A replay must not credit twice.
            raise IntegrityError(
                f"idempotency_key: this request already made entry {self.applied[request]}, "
                "whose idempotency record is missing; refused (report it to security)"
            )
        self._request = request
        spender = spender_of(command)
        if spender and spender in self.unreconciled:
            raise IntegrityError(
                "member_account_id: the member's stored balance does not match the journal "
                "(edited outside the ledger?); spending refused (report it to security)"
            )
        outcome = HANDLERS[type(command)](self, command)
        self._request = b""
        response = command.render(outcome)
        self._remember(meta, response, _sequence_of(outcome))
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

    # -- what the families share ------------------------------------------------

    def closed_in_batch(self, account: str) -> bool:
        """Whether a command of this batch erased ``account``'s member."""
        family = self.families.get(owner_of(account))
        return family is not None and family.closed

    def post_entry(self, kind: str, channel_id: str, data: bytes) -> int:
        """Append an entry without postings (a profile commitment); its sequence."""
        entry, _ = self.append(kind, channel_id, 0, [], data, EntryDetails())
        return entry.sequence

    def family_of(self, account: str) -> Family:
        """The lots of ``account``'s member; NOT_FOUND or closed if it may not be used."""
        family = self.families.get(owner_of(account))
        if family is not None and family.closed:
            raise AccountClosedError()
        if family is None:
            raise NotFoundError("member_account_id: no such account")
        return family

    def new_lot(self, owner: str, seq: int, terms: LotTerms) -> str:
        account = (pending_account if terms.matures_us else lot_account)(owner, seq)
        # the lot's accounts get these terms when their rows are first written
        self.families[owner].terms[seq] = terms
        return account

    def take(self, family: Family, points: int) -> list[tuple[str, int]]:
        """The member's lots ``points`` are spent from, or insufficient points."""
        taken = family.take(points)
        if taken is None:
            raise InsufficientPointsError(available=family.available(), requested=points)
        return taken

    # -- writing entries --------------------------------------------------------

    def post(
        self,
        kind: str,
        channel_id: str,
        reverses: int,
        postings: list[Posting],
        details: EntryDetails,
        member: str,
        data: bytes | None = None,
        **extra: object,
    ) -> Appended:
        """Append one entry. ``data``: the details already sealed (callers
        that change state before posting seal first, so a key that fails
        fails before anything changed)."""
        if data is None:
            data = self.seal_details(member, details)
        entry, digest = self.append(kind, channel_id, reverses, postings, data, details)
        for posting in postings:
            self.move(posting.from_account, -posting.points, entry.sequence)
            self.move(posting.to_account, posting.points, entry.sequence)
        family = self.families[member]
        return Appended(entry, digest, member, family.settled_view(), **extra)  # type: ignore[arg-type]

    def append(
        self,
        kind: str,
        channel_id: str,
        reverses: int,
        postings: list[Posting],
        data: bytes,
        details: EntryDetails,
    ) -> tuple[JournalEntry, bytes]:
        """The next entry of the chain, with its hash and Merkle leaf."""
        head = self.head
        entry = JournalEntry(
            sequence=head.sequence + 1,
            time_us=max(self.now_us, head.time_us),
            prev_hash=head.hash,
            kind=kind,
            channel_id=channel_id,
            reverses=reverses,
            postings=tuple(postings),
            details=data,
            # the command's own entry names its request; the ledger's own don't
            request=self._request if channel_id != SYSTEM else b"",
        )
        if entry.request:
            self._request = b""  # one entry per request
        encoded = entry.encode()
        digest = hashlib.sha256(encoded).digest()
        self.entries.append((entry, digest))
        self.leaves.append(encoded)  # the Merkle leaf data, encoded once
        self.made_details[entry.sequence] = details
        if kind in (KIND_EARN, KIND_REDEEM, KIND_CAPTURE):  # reversible by later commands
            self.originals[entry.sequence] = Original(
                entry.sequence, kind, entry.postings, entry.channel_id
            )
        self.head = Head(entry.sequence, digest, entry.time_us, head.epoch)
        return entry, digest

    def seal_details(self, member: str, details: EntryDetails) -> bytes:
        return self.seal(member, details) if not details.is_empty() else b""

    def move(self, account: str, points: int, seq: int) -> None:
        if is_member_account(account):
            self.families[owner_of(account)].add(account, points)
        else:
            self.balances[account] = self.balances.get(account, 0) + points
        self.touched[account] = seq


def _sequence_of(outcome: Outcome) -> int | None:
    """The entry an idempotency record points at (None: the command made none)."""
    if isinstance(outcome, Appended | VoucherChanged):
        return outcome.entry.sequence
    if isinstance(outcome, MemberErased | ShortfallSettled):
        return outcome.sequence or None
    return None


def spender_of(command: Command) -> str:
    """The member whose points a command spends ("" for none)."""
    if isinstance(command, Redeem | Hold | Transfer | ClaimReward):
        return command.account
    if isinstance(command, Exchange) and command.direction == "out":
        return command.account
    return ""
