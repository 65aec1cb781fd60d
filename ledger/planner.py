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
from fractions import Fraction

from audit.accounts import (
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
    PARTNER_PREFIX,
    PROGRAM_EXPIRED,
    PROGRAM_SETTLED,
    available_form,
    held_account,
    lot_account,
    lot_of,
    owner_of,
    pending_account,
)
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
    Capture,
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
    Refer,
    Referred,
    Release,
    RequestMeta,
    Reverse,
    Settle,
    SettleShortfall,
    ShortfallSettled,
    Transfer,
    WriteProfile,
)
from ledger.errors import (
    AccountClosedError,
    ConflictError,
    HoldEndedError,
    IdempotencyConflictError,
    InsufficientPointsError,
    IntegrityError,
    NotFoundError,
    NotReversibleError,
    PreconditionError,
    ReferralRefusedError,
    ReversalNotAllowedError,
    UnavailableError,
    ValidationError,
)
from ledger.keys.idempotency_digest import request_digest
from ledger.members.freshness import ProfileState, stored_digests
from ledger.profile_planner import commit_profile, write_profile
from ledger.program.config import DEFAULT_PROGRAM, Program
from ledger.program.earn_rules import REFERRAL_RULE, compute_earn, issued_account
from ledger.program.lots import Family, HoldState, LotTerms, pair
from ledger.program.referrals import EXPLAINED, ReferralFacts, refusal
from ledger.program.terms import expires_us, matures_us
from ledger.program.tiers import next_tier, review_after

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
    """A reversible entry (earn, redeem, capture) and what its reversals
    returned so far, per account they returned to (docs/journal-format.md 5.3)."""

    sequence: int
    kind: str
    postings: tuple[Posting, ...]
    channel: str = ""  # the channel that made it (the reversal policy)
    reversed: dict[str, int] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return next(
            (
                owner_of(a)
                for p in self.postings
                for a in (p.from_account, p.to_account)
                if is_member_account(a)
            ),
            "",
        )

    def limits(self) -> list[tuple[str, int]]:
        """(account a reversal returns points to, points still returnable),
        in the order a reversal uses them (the last one first)."""
        given: dict[str, int] = {}
        for p in self.postings:
            if self.kind == KIND_EARN:
                key = p.from_account  # a program:issued* account
            elif p.to_account == PROGRAM_REDEEMED:
                key = available_form(p.from_account)
            else:
                continue
            given[key] = given.get(key, 0) + p.points
        out = [(k, n - self.reversed.get(k, 0)) for k, n in given.items()]
        return [(k, n) for k, n in reversed(out) if n > 0]

    @property
    def left(self) -> int:
        return sum(n for _, n in self.limits())


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
    # members whose profiles the batch writes (ledger/profile_planner.py)
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

    @property
    def _min_referral_minor(self) -> int:
        return self.program.referrals.min_purchase_units * self.program.earn.minor_per_unit

    # -- commands ---------------------------------------------------------------

    def settle(self, owner: str) -> None:
        """Post what time has made due for ``owner``: timed-out holds go
        back to their lots, pending lots past their return window mature,
        lots past their expiry expire. Run for every member of a batch
        before its commands, so every command sees a settled balance."""
        family = self.families.get(owner)
        if family is None or family.closed:
            return
        holds, maturing, expiring = family.due(self.now_us)
        for hold in holds:
            self._end_hold(hold, KIND_RELEASE, _SYSTEM, 0, EntryDetails())
        if maturing:
            postings = [Posting(a, lot_account(owner, lot_of(a)), n) for a, n in maturing]
            self._post(KIND_MATURE, _SYSTEM, 0, postings, EntryDetails(), owner)
        # pending purchases whose points were all refunded or spent mature too
        for lot in [
            n for n in family.stats.pending if family.terms_of(n).matures_us <= self.now_us
        ]:
            family.stats.mature(lot)
        # rewards for referrals whose purchase cleared its window: they count now
        for seq in [
            s for s in family.stats.pending_rewards if family.terms_of(s).matures_us <= self.now_us
        ]:
            family.stats.pending_rewards.remove(seq)
            family.stats.referrals += 1
            family.stats.changed = True
        _, _, expiring = family.due(self.now_us)  # holds released back into expired lots
        if expiring:
            postings = [Posting(a, PROGRAM_EXPIRED, n) for a, n in expiring]
            self._post(KIND_EXPIRE, _SYSTEM, 0, postings, EntryDetails(), owner)
        self._retier(family)

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
        outcome: Outcome
        if isinstance(command, Earn):
            outcome = self._earn(command)
        elif isinstance(command, Hold):
            outcome = self._hold(command)
        elif isinstance(command, Transfer):
            outcome = self._transfer(command)
        elif isinstance(command, Exchange):
            outcome = self._exchange(command)
        elif isinstance(command, Redeem):
            outcome = self._redeem(command)
        elif isinstance(command, Reverse):
            outcome = self._reverse(command)
        elif isinstance(command, Capture | Release):
            outcome = self._resolve(command)
        elif isinstance(command, Enroll):
            outcome = self._enroll(command)
        elif isinstance(command, Refer):
            outcome = self._refer(command)
        elif isinstance(command, SettleShortfall):
            outcome = self._settle_shortfall(command)
        else:
            outcome = self._erase(command)
        self._request = b""
        response = command.render(outcome)
        seq = outcome.entry.sequence if isinstance(outcome, Appended) else None
        if isinstance(outcome, MemberErased) and outcome.sequence:
            seq = outcome.sequence
        if isinstance(outcome, ShortfallSettled):
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
        if cmd.account in self.families:
            # 128 random bits collided: never in practice; nothing was written
            # (the account id is chosen before the batch: ciphertexts bind it)
            raise UnavailableError("member_account_id: generated id is taken; retry")
        self.families[cmd.account] = Family(cmd.account, {cmd.account: 0})
        self.opened.append(cmd.account)
        self.enrolled.append(cmd)
        self.lookups.update(cmd.sealed.lookups)
        self.profiles[cmd.account] = ProfileState(cmd.sealed.dek_version, {}, None)
        if cmd.sealed.fields:  # the enrollment's entry: its fields' commitment
            fields = dict(cmd.sealed.fields)
            commit_profile(self, cmd.account, cmd.meta.channel_id, stored_digests(fields))
        return AccountOpened(cmd.account)

    def _erase(self, cmd: Erase) -> MemberErased:
        family = self._family(cmd.account)
        postings = [
            Posting(a, PROGRAM_FORFEITED, n) for a, n in sorted(family.accounts.items()) if n > 0
        ]
        balance = sum(p.points for p in postings)
        seq = 0
        if postings:
            appended = self._post(
                KIND_ERASE, cmd.meta.channel_id, 0, postings, EntryDetails(), cmd.account
            )
            seq = appended.entry.sequence
        for hold in list(family.holds.values()):
            family.holds.pop(hold.sequence)
            self.holds.pop(hold.sequence, None)
            self.ended_holds.append((hold.sequence, seq))
            self.ended[hold.sequence] = (hold.owner, seq)
        family.closed = True
        self.erased.append((cmd, seq or None))
        self.head.epoch += 1  # tells other appenders their caches are stale
        return MemberErased(cmd.account, balance, seq)

    def closed_in_batch(self, account: str) -> bool:
        """Whether a command of this batch erased ``account``'s member."""
        family = self.families.get(owner_of(account))
        return family is not None and family.closed

    def post_entry(self, kind: str, channel_id: str, data: bytes) -> int:
        """Append an entry without postings (a profile commitment); its sequence."""
        entry, _ = self._append(kind, channel_id, 0, [], data, EntryDetails())
        return entry.sequence

    def _family(self, account: str) -> Family:
        family = self.families.get(owner_of(account))
        if family is not None and family.closed:
            raise AccountClosedError()
        if family is None:
            raise NotFoundError("member_account_id: no such account")
        return family

    def _new_lot(self, owner: str, seq: int, terms: LotTerms) -> str:
        account = (pending_account if terms.matures_us else lot_account)(owner, seq)
        # the lot's accounts get these terms when their rows are first written
        self.families[owner].terms[seq] = terms
        return account

    def _earn(self, cmd: Earn) -> Appended:
        family = self._family(cmd.account)
        when = cmd.occurred_us or self.now_us
        rules: tuple[tuple[str, int], ...] = ()
        if cmd.points:
            sources = [(PROGRAM_ISSUED, cmd.points)]
        else:
            rules = compute_earn(
                self.program,
                purchase_minor=cmd.details.purchase_minor_units,
                currency=cmd.details.purchase_currency,
                categories=cmd.categories,
                channel_id=cmd.meta.channel_id,
                member=family.owner,
                tier=family.stats.tier,
                recent=family.recent,
                when_us=when,
            )
            sources = [(issued_account(rule), n) for rule, n in rules]
            total = sum(n for _, n in rules)
            if self.max_points and total > self.max_points:
                raise ValidationError(
                    "purchase", f"earns more than the per-entry limit of {self.max_points} points"
                )
        data = self._seal(family.owner, cmd.details)  # before anything changes
        purchase = bool(cmd.details.purchase_currency) and cmd.details.purchase_minor_units > 0
        terms = LotTerms(
            expires_us=expires_us(self.program, when),
            matures_us=(
                matures_us(self.program, when, cmd.meta.channel_id, cmd.categories)
                if purchase
                else 0
            ),
        )
        if terms.matures_us and terms.matures_us <= self.now_us:
            terms = LotTerms(terms.expires_us, 0)  # an offline purchase already past its window
        seq = self.head.sequence + 1
        target = self._new_lot(family.owner, seq, terms)
        postings = [Posting(source, target, n) for source, n in sources]
        # the referrer's reward: the first qualifying purchase since the
        # member was referred (a clawed-back reward lets the next one qualify)
        qualifying = (
            purchase
            and family.stats.referrer != ""
            and family.stats.reward_seq == 0
            and cmd.details.purchase_minor_units >= self._min_referral_minor
        )
        if purchase:
            family.note_purchase(cmd.categories, when)
            family.stats.add_purchase(
                seq, cmd.details.purchase_minor_units, when, matured=not terms.matures_us
            )
        appended = self._post(
            KIND_EARN,
            cmd.meta.channel_id,
            0,
            postings,
            cmd.details,
            family.owner,
            data=data,
            rules=rules,
        )
        if qualifying:
            self._reward_referrer(family, terms.matures_us, appended.entry.sequence)
        self._retier(family)
        return appended

    def _reward_referrer(self, referred: Family, matures: int, purchase: int) -> None:
        """The referred member's first qualifying purchase: the referrer's
        reward, held pending until that purchase clears its return window;
        only then does the referral count (tiers, super fan)."""
        referrer = self.families.get(referred.stats.referrer)
        if referrer is None or referrer.closed:
            return
        seq = self.head.sequence + 1
        terms = LotTerms(expires_us(self.program, self.now_us), matures)
        target = self._new_lot(referrer.owner, seq, terms)
        points = self.program.referrals.reward_points
        posting = Posting(issued_account(REFERRAL_RULE), target, points)
        self._post(KIND_EARN, _SYSTEM, 0, [posting], EntryDetails(), referrer.owner)
        referred.stats.reward_seq = seq
        referred.stats.reward_purchase = purchase
        referred.stats.changed = True
        if matures:
            referrer.stats.pending_rewards.append(seq)
        else:  # a purchase without a return window has cleared already
            referrer.stats.referrals += 1
        referrer.stats.changed = True
        self._retier(referrer)

    def _refunded_inside_window(self, family: Family, original: Original) -> None:
        """A refund of a purchase still inside its return window: in full, the
        purchase never counts; and if it triggered a referral reward still
        pending, the reward goes once what is left of the purchase is below
        the program's minimum (a full refund always)."""
        stats = family.stats
        minor = stats.pending[original.sequence][0]
        total = sum(p.points for p in original.postings)
        left_minor = minor * original.left // total if total else 0
        if original.left == 0:
            stats.drop_pending(original.sequence)
        triggered = stats.reward_purchase == original.sequence or (
            # a reward from before the triggering purchase was kept: the old rule
            stats.reward_purchase == 0 and original.left == 0 and not stats.bought
        )
        if (
            stats.reward_seq
            and triggered
            and (original.left == 0 or left_minor < self._min_referral_minor)
        ):
            self._clawback_reward(family)

    def _clawback_reward(self, referred: Family) -> None:
        """The first purchase was refunded while the referrer's reward was
        still pending: the reward goes too (fake orders earn nothing)."""
        reward = self.originals.get(referred.stats.reward_seq)
        referrer = self.families.get(referred.stats.referrer)
        if reward is None or referrer is None or referrer.closed:
            return
        pending = pending_account(referrer.owner, reward.sequence)
        points = min(referrer.accounts.get(pending, 0), reward.left)
        if points <= 0:
            return
        postings = pair([(pending, points)], _first(reward.limits(), points))
        self._post(KIND_REVERSE, _SYSTEM, reward.sequence, postings, EntryDetails(), referrer.owner)
        for p in postings:
            reward.reversed[p.to_account] = reward.reversed.get(p.to_account, 0) + p.points
        referred.stats.reward_seq = 0
        referred.stats.reward_purchase = 0
        referred.stats.changed = True
        if reward.sequence in referrer.stats.pending_rewards:
            referrer.stats.pending_rewards.remove(reward.sequence)
        else:  # a reward from before pending referrals were kept: it was counted
            referrer.stats.referrals -= 1
        referrer.stats.changed = True

    def _retier(self, family: Family) -> None:
        stats = family.stats
        change = next_tier(stats, self.program, self.now_us)
        if change is not None:
            tier, reason = change
            stats.changes += 1
            self.tier_changes.append((family.owner, stats.changes, stats.tier, tier, reason))
            stats.tier = tier
            stats.changed = True
        if stats.tier != "none" and (
            change is not None or not stats.review_us or stats.review_us <= self.now_us
        ):
            stats.review_us = review_after(self.program, self.now_us)
            stats.changed = True

    def _refer(self, cmd: Refer) -> Referred:
        referrer = self._family(cmd.account)
        referred = self._family(cmd.referred)
        if referrer.owner == referred.owner:
            raise ValidationError("referred_member_account_id", "must differ from the referrer")
        facts = self.referral_facts.get(
            (referrer.owner, referred.owner), ReferralFacts(0, 0, False, b"")
        )
        # what this batch registered counts towards the caps too
        mine = [r for r in self.new_referrals if r.account == referrer.owner]
        same_device = [
            r for r in self.new_referrals if cmd.device_token and r.device_token == cmd.device_token
        ]
        facts = ReferralFacts(
            facts.referrer_recent + len(mine),
            facts.device_recent + len(same_device),
            facts.shared_lookup,
            facts.referrer_device,
        )
        reason = refusal(
            self.program, referrer, referred, facts, cmd.device_token, cmd.referrer_device_token
        )
        if reason is not None:
            # kept for fraud review (security reports), though the call fails
            self.refusals.append((referrer.owner, referred.owner, reason))
            raise ReferralRefusedError(reason, EXPLAINED[reason])
        referred.stats.referrer = referrer.owner
        referred.stats.changed = True
        self.new_referrals.append(cmd)
        return Referred(referrer.owner, referred.owner, referrer.stats.referrals)

    def _take(self, family: Family, points: int) -> list[tuple[str, int]]:
        taken = family.take(points)
        if taken is None:
            raise InsufficientPointsError(available=family.available(), requested=points)
        return taken

    def _redeem(self, cmd: Redeem) -> Appended:
        family = self._family(cmd.account)
        # offline, the goods were handed over already: what the member's
        # points do not cover is the store's shortfall (docs/outage.md)
        short = max(0, cmd.points - family.available()) if cmd.offline else 0
        postings = [
            Posting(a, PROGRAM_REDEEMED, n) for a, n in self._take(family, cmd.points - short)
        ]
        if short:
            postings.append(Posting(cmd.shortfall_account, PROGRAM_REDEEMED, short))
        kind = KIND_SHORTFALL if short else KIND_REDEEM
        return self._post(kind, cmd.meta.channel_id, 0, postings, cmd.details, family.owner)

    def _settle_shortfall(self, cmd: SettleShortfall) -> ShortfallSettled:
        """A store paid for shortfall points: never more than it owes."""
        owed = -self.balance_of(cmd.store_account)
        if cmd.points > owed:
            raise PreconditionError(
                f"points: more than the store owes ({owed})",
                metadata={"owed": str(owed)},
            )
        posting = Posting(PROGRAM_SETTLED, cmd.store_account, cmd.points)
        entry, _ = self._append(
            KIND_SETTLEMENT, cmd.meta.channel_id, 0, [posting], b"", EntryDetails()
        )
        self._move(PROGRAM_SETTLED, -cmd.points, entry.sequence)
        self._move(cmd.store_account, cmd.points, entry.sequence)
        return ShortfallSettled(cmd.store_account, cmd.points, owed - cmd.points, entry.sequence)

    def _hold(self, cmd: Hold) -> Appended:
        family = self._family(cmd.account)
        minutes = cmd.minutes or self.program.holds.default_minutes
        if minutes > self.program.holds.max_minutes:
            raise ValidationError(
                "minutes", f"must be at most {self.program.holds.max_minutes} (the program's limit)"
            )
        postings = [
            Posting(a, held_account(family.owner, lot_of(a)), n)
            for a, n in self._take(family, cmd.points)
        ]
        data = self._seal(family.owner, cmd.details)  # before anything changes
        expires = self.now_us + minutes * 60_000_000
        seq = self.head.sequence + 1
        hold = HoldState(seq, family.owner, tuple(postings), expires, cmd.meta.channel_id)
        family.add_hold(hold)
        self.holds[seq] = hold
        self.new_holds.append(hold)
        return self._post(
            KIND_HOLD,
            cmd.meta.channel_id,
            0,
            postings,
            cmd.details,
            family.owner,
            data=data,
            hold_expires_us=expires,
        )

    def _resolve(self, cmd: Capture | Release) -> Appended:
        hold = self.holds.get(cmd.hold_sequence)
        ended = self.ended.get(cmd.hold_sequence)
        if hold is None and ended is not None and ended[0] == cmd.account:
            raise HoldEndedError(cmd.hold_sequence, ended[1])  # e.g. the loser of a race
        if hold is None or hold.owner != cmd.account:  # another member's: as if none
            raise NotFoundError(
                "hold_sequence: no open hold with this sequence (never made, already "
                "captured or released, or timed out)"
            )
        self._family(hold.owner)
        if isinstance(cmd, Release):
            return self._end_hold(hold, KIND_RELEASE, cmd.meta.channel_id, 0, cmd.details)
        points = hold.points if cmd.points is None else cmd.points
        if points > hold.points:
            raise InsufficientPointsError(available=hold.points, requested=points)
        return self._end_hold(hold, KIND_CAPTURE, cmd.meta.channel_id, points, cmd.details)

    def _end_hold(
        self, hold: HoldState, kind: str, channel: str, capture: int, details: EntryDetails
    ) -> Appended:
        postings: list[Posting] = []
        left = capture
        for p in hold.postings:
            use = min(left, p.points)
            left -= use
            if use:
                postings.append(Posting(p.to_account, PROGRAM_REDEEMED, use))
            if p.points - use:
                postings.append(Posting(p.to_account, p.from_account, p.points - use))
        family = self.families[hold.owner]
        family.holds.pop(hold.sequence, None)
        self.holds.pop(hold.sequence, None)
        appended = self._post(kind, channel, hold.sequence, postings, details, hold.owner)
        self.ended_holds.append((hold.sequence, appended.entry.sequence))
        self.ended[hold.sequence] = (hold.owner, appended.entry.sequence)
        return appended

    def _transfer(self, cmd: Transfer) -> Appended:
        sender = self._family(cmd.account)
        receiver = self._family(cmd.to_account)
        if sender.owner == receiver.owner:
            raise ValidationError("to_member_account_id", "must differ from member_account_id")
        if not self.program.transfers.enabled:
            raise PreconditionError("transfers: the program does not allow them")
        if cmd.points > self.program.transfers.max_points:
            raise ValidationError(
                "points", f"must be at most {self.program.transfers.max_points} per transfer"
            )
        taken = self._take(sender, cmd.points)
        expiries = [sender.terms_of(lot_of(a)).expires_us for a, _ in taken]
        soonest = min((e for e in expiries if e), default=0)
        data = self._seal(sender.owner, cmd.details)  # before anything changes
        seq = self.head.sequence + 1
        target = self._new_lot(receiver.owner, seq, LotTerms(soonest, 0))
        postings = [Posting(a, target, n) for a, n in taken]
        return self._post(
            KIND_TRANSFER, cmd.meta.channel_id, 0, postings, cmd.details, sender.owner, data=data
        )

    def _exchange(self, cmd: Exchange) -> Appended:
        family = self._family(cmd.account)
        partner = self.program.partner(cmd.partner)
        if partner is None:
            raise ValidationError("partner_id", "names no partner of the program")
        clearing = PARTNER_PREFIX + partner.id
        if cmd.direction == "out":
            if partner.units_per_point_out is None:
                raise PreconditionError("partner_id: the partner takes no points")
            exact = Fraction(cmd.points) * Fraction(partner.units_per_point_out)
            if exact.denominator != 1:  # no point may leave without its value
                step = Fraction(partner.units_per_point_out).denominator
                raise ValidationError(
                    "points", f"must convert to whole partner units: a multiple of {step}"
                )
            units = int(exact)
            postings = [Posting(a, clearing, n) for a, n in self._take(family, cmd.points)]
            return self._post(
                KIND_EXCHANGE_OUT,
                cmd.meta.channel_id,
                0,
                postings,
                cmd.details,
                family.owner,
                partner_units=units,
            )
        if partner.points_per_unit_in is None:
            raise PreconditionError("partner_id: the partner sends no points")
        points = int(cmd.units * partner.points_per_unit_in)
        if points < 1:
            raise ValidationError("partner_units", "too few to make one point")
        if self.max_points and points > self.max_points:
            raise ValidationError(
                "partner_units", f"make more than the per-entry limit of {self.max_points} points"
            )
        data = self._seal(family.owner, cmd.details)  # before anything changes
        seq = self.head.sequence + 1
        target = self._new_lot(family.owner, seq, LotTerms(expires_us(self.program, self.now_us)))
        return self._post(
            KIND_EXCHANGE_IN,
            cmd.meta.channel_id,
            0,
            [Posting(clearing, target, points)],
            cmd.details,
            family.owner,
            data=data,
            partner_units=cmd.units,
        )

    def _reverse(self, cmd: Reverse) -> Appended:
        original = self.originals.get(cmd.original_sequence)
        if original is None or original.owner != cmd.account:
            # one answer for both: a sequence is guessable, whose entry it is
            # must not be
            raise NotFoundError("original_sequence: no such entry of member_account_id")
        if not self.program.reversals.allows(cmd.meta.channel_id, original.channel):
            raise ReversalNotAllowedError(cmd.meta.channel_id, original.channel)
        if original.kind not in (KIND_EARN, KIND_REDEEM, KIND_CAPTURE):
            raise NotReversibleError(
                f"original_sequence: a {original.kind} entry cannot be reversed",
                metadata={"kind": original.kind},
            )
        left = original.left
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
        family = self.families.get(original.owner)
        if family is None or family.closed:
            raise AccountClosedError("original_sequence")
        targets = _first(original.limits(), points)
        if original.kind == KIND_EARN:
            sources = self._clawback(family, original, points)
        else:
            sources = [(PROGRAM_REDEEMED, points)]
        postings = pair(sources, targets)
        appended = self._post(
            KIND_REVERSE,
            cmd.meta.channel_id,
            original.sequence,
            postings,
            cmd.details,
            family.owner,
        )
        for key, n in targets:
            original.reversed[key] = original.reversed.get(key, 0) + n
        if original.kind == KIND_EARN and original.sequence in family.stats.pending:
            self._refunded_inside_window(family, original)
        return appended

    def _clawback(self, family: Family, original: Original, points: int) -> list[tuple[str, int]]:
        """Where a refund takes an earn's points back from: the earn's own
        lot first (pending points before anything else), then the member's
        other available lots, soonest expiry first."""
        lot = original.sequence
        own = [
            a
            for a in (pending_account(family.owner, lot), lot_account(family.owner, lot))
            if family.accounts.get(a, 0) > 0
        ]
        legacy = [family.owner] if not original.postings[0].to_account.count("/") else []
        sources: list[tuple[str, int]] = []
        left = points
        for account in own + legacy:
            use = min(left, family.accounts.get(account, 0))
            if use:
                sources.append((account, use))
                left -= use
        used = {a for a, _ in sources}
        for account, have in family.spend_order():
            if left == 0:
                break
            if account in used:
                continue
            use = min(have, left)
            sources.append((account, use))
            left -= use
        if left:
            available = points - left
            raise InsufficientPointsError(available=available, requested=points)
        return sources

    # -- writing entries --------------------------------------------------------

    def _post(
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
            data = self._seal(member, details)
        entry, digest = self._append(kind, channel_id, reverses, postings, data, details)
        for posting in postings:
            self._move(posting.from_account, -posting.points, entry.sequence)
            self._move(posting.to_account, posting.points, entry.sequence)
        family = self.families[member]
        return Appended(entry, digest, member, family.settled_view(), **extra)  # type: ignore[arg-type]

    def _append(
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
            request=self._request if channel_id != _SYSTEM else b"",
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

    def _seal(self, member: str, details: EntryDetails) -> bytes:
        return self.seal(member, details) if not details.is_empty() else b""

    def _move(self, account: str, points: int, seq: int) -> None:
        if is_member_account(account):
            self.families[owner_of(account)].add(account, points)
        else:
            self.balances[account] = self.balances.get(account, 0) + points
        self.touched[account] = seq


_SYSTEM = "program"  # the channel of entries the ledger posts by itself


def spender_of(command: Command) -> str:
    """The member whose points a command spends ("" for none)."""
    if isinstance(command, Redeem | Hold | Transfer):
        return command.account
    if isinstance(command, Exchange) and command.direction == "out":
        return command.account
    return ""


def _first(limits: list[tuple[str, int]], points: int) -> list[tuple[str, int]]:
    """The first ``points`` of ``limits``, in order."""
    out: list[tuple[str, int]] = []
    for key, n in limits:
        if points == 0:
            break
        use = min(n, points)
        out.append((key, use))
        points -= use
    return out
