"""Group commit: one thread appends every mutating command to the journal.

Request handlers (coroutines on the gRPC event loop) ``await append(command)``.
The appender thread takes whatever is queued (up to ``max_batch``), opens one
transaction, takes the writers' lock (the chain head), loads what the batch
needs, lets the ``BatchPlanner`` decide each command in arrival order,
writes the results and commits once, durably. Only then are the callers'
futures resolved, all of a batch in one hop to their event loop: a caller
never sees a result that is not on disk.

Failure handling: a command the planner refuses fails alone and leaves no
trace. If the transaction itself fails (storage error), the batch is retried
command by command, so one bad command cannot sink its neighbours; whatever
still fails gets ``UnavailableError`` (retryable: nothing was written).

Several server processes may each run an appender on one PostgreSQL
database: the head row lock makes their transactions take turns, and each
re-reads the head and balances after taking it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from audit.accounts import (
    PARTNER_PREFIX,
    PROGRAM_EXPIRED,
    PROGRAM_SETTLED,
    available_form,
    owner_of,
    voucher_account,
)
from audit.decisions import AccessDecision
from audit.entry_format import is_member_account
from ledger import metrics
from ledger.commands import (
    KIND_EARN,
    PROGRAM_ACCOUNTS,
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
    Redeem,
    RedeemVoucher,
    Refer,
    Release,
    Reverse,
    Settle,
    SettleShortfall,
    Transfer,
    WriteProfile,
    open_details,
    seal_details,
)
from ledger.errors import IntegrityError, LedgerError, UnavailableError
from ledger.keys.errors import DecryptionError
from ledger.keys.field_cipher import FieldCipher
from ledger.keys.idempotency_digest import IdempotencyDigest, request_digest
from ledger.members.freshness import LEGACY_TASK
from ledger.members.vault import MemberVault, StoredKey
from ledger.merkle_logs import MerkleLogs
from ledger.planner import (
    BatchPlanner,
    DetailsSealer,
    Head,
    SameDetails,
    clear_details,
    same_clear_details,
    spender_of,
)
from ledger.program.config import DEFAULT_PROGRAM, Program
from ledger.program.earn_rules import BASE_RULE, REFERRAL_RULE, issued_account
from ledger.program.lots import Family
from ledger.storage import journal_writes as sql
from ledger.storage.database import Database, truncate_wal

log = structlog.get_logger(__name__)

Clock = Callable[[], int]  # microseconds since the Unix epoch


def system_clock_us() -> int:
    return time.time_ns() // 1000


Outcome = bytes | LedgerError
# receives, on its event loop, the (token, outcome) of each of its items of
# one group commit: how the writer process answers a worker (writer_link.py)
Sink = Callable[[list[tuple[int, Outcome]]], None]


@dataclass(frozen=True, slots=True)
class _Item:
    command: Command | None  # None: an access record alone
    record: AccessDecision | None  # written to the access log in the same transaction
    loop: asyncio.AbstractEventLoop | None  # None: a blocking caller waits on ``future``
    future: asyncio.Future[bytes] | concurrent.futures.Future[bytes] | None
    sink: Sink | None = None  # instead of a future: outcomes go to the sink, in bulk
    token: int = 0  # the item's id for its sink


def _settle(
    results: list[tuple[asyncio.Future[bytes] | concurrent.futures.Future[bytes], Outcome]],
) -> None:
    """Runs on the callers' event loop: resolve a whole batch at once."""
    for future, result in results:
        if future.done():  # the caller gave up (cancelled or timed out)
            continue
        if isinstance(result, LedgerError):
            future.set_exception(result)
        else:
            future.set_result(result)


class Journal(Protocol):
    """What request handlers use of the appender: the appender itself, or a
    worker's link to it in the writer process (ledger/service/writer_link.py)."""

    async def append(self, command: Command, record: AccessDecision | None = None) -> bytes: ...

    async def record(self, decision: AccessDecision) -> None: ...

    def append_blocking(self, command: Command) -> bytes: ...

    def record_blocking(self, decision: AccessDecision) -> None: ...


_STOP = object()
# a group commit slower than this (and than this per command: a bulk batch of
# thousands takes longer by design) is logged, with where the time went
SLOW_BATCH_S = 0.05
SLOW_ITEM_S = 0.001
_CACHE_LIMIT = 1_000_000  # members whose families the appender remembers
# and their accounts (lots, pending, held) and lot terms in total: a family
# grows with every earn its member makes, so a count of members alone let
# the writer's memory grow with the journal (bench/bench_soak.py)
_CACHE_ACCOUNT_LIMIT = 100_000
_CIPHER_LIMIT = 100_000  # accounts whose unwrapped data key the appender remembers


class Appender:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock = system_clock_us,
        max_batch: int = 512,
        vault: MemberVault | None = None,
        journal_tree: bool = True,
        program: Program = DEFAULT_PROGRAM,
        max_points: int = 0,
    ) -> None:
        self._db = db
        self._max_points = max_points  # per entry, for points the program computes
        self._program = program
        self._rule_ids = [BASE_RULE, REFERRAL_RULE, *program.earn.rule_ids()]
        self._vault = vault  # None: entry details stay clear (format 0x01)
        # idempotency keys and fingerprints are stored as keyed digests
        # (ledger/keys/idempotency_digest.py); without a keyring, raw
        self._idem = IdempotencyDigest.for_keyring(vault.keyring) if vault else None
        # unwrapped data keys, to seal entry details; an erasure drops its own
        self._ciphers: dict[str, FieldCipher] = {}
        self._logs = MerkleLogs()  # the journal's and the access log's trees
        # False only to measure what the tree costs (bench/bench_logs.py): a
        # journal without its tree nodes cannot be checkpointed
        self._journal_tree = journal_tree
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="journal-appender", daemon=True)
        self._thread.start()
        # balances (and closed accounts) as of _cache_head, see _balances();
        # only the appender thread uses them
        self._cache: dict[str, Family] = {}  # member -> its lots, holds, activity
        self._cache_sizes: dict[str, int] = {}  # member -> its family's size, when cached
        self._cache_accounts = 0  # sum of _cache_sizes
        # members whose family, as cached, was reconciled with the journal
        self._reconciled: set[str] = set()
        self._program_cache: dict[str, int] = {}
        self._cache_head: tuple[int, bytes, int] | None = None
        # an erasure's WAL truncation that readers held off: retried after
        # each commit until it succeeds (_scrub_wal)
        self._scrub_pending = False
        self.batches = 0  # counters for benchmarks and tests
        self.commands = 0

    async def append(self, command: Command, record: AccessDecision | None = None) -> bytes:
        """Queue a command and wait for its committed, serialized response.

        ``record`` (the access decision that admitted the call) is written
        to the access log in the same transaction, whatever the command's
        outcome; if it cannot be written, nothing is. Raises the command's
        LedgerError, or UnavailableError when the server is shutting down
        or storage failed. There is no timeout of its own: the caller's
        gRPC deadline cancels the wait (the command may still commit then,
        so a retry with the same idempotency key is safe).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._put(_Item(command, record, loop, future))
        return await future

    async def record(self, decision: AccessDecision) -> None:
        """Append an access record and return once it is durable (the
        DecisionSink of the server); UnavailableError if it cannot be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._put(_Item(None, decision, loop, future))
        await future

    def submit(
        self,
        command: Command | None,
        record: AccessDecision | None,
        loop: asyncio.AbstractEventLoop,
        sink: Sink,
        token: int,
    ) -> None:
        """Queue a command (or a record alone) whose outcome goes to
        ``sink`` on ``loop`` with the other outcomes of its group commit
        for that sink, as ``(token, outcome)``. UnavailableError when
        closed."""
        self._put(_Item(command, record, loop, None, sink, token))

    def append_blocking(self, command: Command) -> bytes:
        """``append`` for callers outside an event loop (the settle CLI)."""
        future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        self._put(_Item(command, None, None, future))
        return future.result()

    def append_all_blocking(self, commands: list[Command]) -> list[Outcome]:
        """Queue ``commands`` in order and wait for all their outcomes (the
        bulk path, ledger/bulk.py): they fill group commits of up to
        ``max_batch`` with one wake-up per commit, not one per command."""
        if not commands:
            return []
        outcomes: dict[int, Outcome] = {}
        done = threading.Event()

        def sink(results: list[tuple[int, Outcome]]) -> None:  # on the appender thread
            outcomes.update(results)
            if len(outcomes) == len(commands):
                done.set()

        for i, command in enumerate(commands):
            self._put(_Item(command, None, None, None, sink, i))
        done.wait()
        return [outcomes[i] for i in range(len(commands))]

    def record_blocking(self, decision: AccessDecision) -> None:
        """``record`` for callers outside the event loop (worker threads)."""
        future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        self._put(_Item(None, decision, None, future))
        result = future.result()
        del result

    @property
    def queue_depth(self) -> int:
        """Items waiting for the writer thread (approximate)."""
        return self._queue.qsize()

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._closed:
                raise UnavailableError("server is shutting down")
            self._queue.put(item)

    def close(self) -> None:
        """Finish everything already submitted, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._process([b for b in batch if isinstance(b, _Item)])

    def _process(self, batch: list[_Item]) -> None:
        try:
            results = self._commit(batch)
        except Exception:
            if len(batch) > 1:
                log.warning("batch_failed_retrying_singly", size=len(batch), exc_info=True)
                for item in batch:
                    self._process([item])
                return
            log.error("append_failed", exc_info=True)
            results = [
                UnavailableError(
                    "journal: storage error; retry with the same idempotency_key "
                    "(a replay returns the result if it was committed)"
                    if batch[0].command is not None
                    else "access log: cannot be written, so the call was refused; retry later"
                )
            ]
        else:
            self.batches += 1
            self.commands += len(batch)
        by_loop: dict[
            asyncio.AbstractEventLoop | None,
            list[tuple[asyncio.Future[bytes] | concurrent.futures.Future[bytes], Outcome]],
        ] = {}
        by_sink: dict[tuple[asyncio.AbstractEventLoop | None, Sink], list[tuple[int, Outcome]]] = {}
        for item, result in zip(batch, results, strict=True):
            if item.sink is not None:
                by_sink.setdefault((item.loop, item.sink), []).append((item.token, result))
            else:
                assert item.future is not None
                by_loop.setdefault(item.loop, []).append((item.future, result))
        for (sink_loop, sink), outcomes in by_sink.items():
            if sink_loop is None:  # a blocking caller's sink: thread-safe by contract
                sink(outcomes)
                continue
            try:
                sink_loop.call_soon_threadsafe(sink, outcomes)
            except RuntimeError:
                log.warning("results_undeliverable", size=len(outcomes))
        for loop, settled in by_loop.items():
            if loop is None:  # concurrent futures: safe to resolve from this thread
                _settle(settled)
                continue
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                log.warning("results_undeliverable", size=len(settled))

    def _state(
        self, tx: sql.WriteTx, head: Head, owners: set[str], programs: set[str], lots: set[str]
    ) -> tuple[dict[str, Family], dict[str, int]]:
        """The families of ``owners`` and balances of ``programs`` accounts,
        from the cache where it is valid.

        The cache holds them as of the head this appender last wrote. Every
        entry moves the head and every erasure its epoch, so an unchanged
        (sequence, hash, epoch) proves no other writer (another server
        process) changed a balance or closed an account since; otherwise
        the cache is dropped and everything is read again.
        """
        if (
            self._cache_head != (head.sequence, head.hash, head.epoch)
            or len(self._cache) > _CACHE_LIMIT
            or self._cache_accounts > _CACHE_ACCOUNT_LIMIT
        ):
            self._cache.clear()
            self._cache_sizes.clear()
            self._cache_accounts = 0
            self._program_cache.clear()
            self._reconciled.clear()  # read again: reconciled again before spending
            self._ciphers.clear()  # another process may have erased someone
        families = {o: self._cache[o] for o in owners if o in self._cache}
        missing = owners - families.keys()
        if missing or lots:
            families.update(sql.load_families(tx, missing | {owner_of(a) for a in lots}, lots))
        balances = {a: self._program_cache[a] for a in programs if a in self._program_cache}
        if programs - balances.keys():
            balances.update(sql.load_balances(tx, programs - balances.keys()))
        return families, balances

    def _commit(self, batch: list[_Item]) -> list[Outcome]:
        """One transaction on the driver connection (see journal_writes):
        the batch's journal entries with their tree nodes, and every access
        record of the batch, or nothing."""
        commands = [item.command for item in batch if item.command is not None]
        started = time.perf_counter()
        raw = self._db.writer.raw_connection()
        try:
            tx = sql.WriteTx(raw.driver_connection, self._db.writer.dialect.name)
            tx.begin()
            locked = time.perf_counter()
            self._logs.begin()
            planner, planned = self._plan(tx, commands)
            before = (planner.start.sequence, planner.start.hash)
            sql.write_batch(tx, planner)
            if planner.entries and self._journal_tree:
                self._logs.grow_journal(tx, before, planner.entries, planner.leaves)
            records = [item.record for item in batch if item.record is not None]
            if records:
                self._logs.append_access(tx, records)
            written = time.perf_counter()
            raw.commit()
            done = time.perf_counter()
            metrics.batch(len(batch), done - written)
            if done - started > SLOW_BATCH_S and done - started > len(batch) * SLOW_ITEM_S:
                log.warning(
                    "slow_batch",
                    size=len(batch),
                    lock_ms=round((locked - started) * 1000, 1),
                    work_ms=round((written - locked) * 1000, 1),
                    commit_ms=round((done - written) * 1000, 1),
                )
        except BaseException:
            self._cache_head = None  # rolled back: trust nothing cached
            self._logs.forget()
            raw.rollback()
            raise
        finally:
            raw.close()  # back to the pool
        self._logs.committed()
        if (planner.erased or self._scrub_pending) and self._db.is_sqlite:
            self._scrub_wal(erasures=len(planner.erased))
        outcomes = iter(planned)
        results: list[Outcome] = [
            next(outcomes) if item.command is not None else b"" for item in batch
        ]
        self._cache.update(planner.families)
        for owner, family in planner.families.items():
            size = len(family.accounts) + len(family.terms) + len(family.holds)
            self._cache_accounts += size - self._cache_sizes.get(owner, 0)
            self._cache_sizes[owner] = size
        self._program_cache.update(planner.balances)
        for account in planner.closed:
            self._ciphers.pop(account, None)
        for write in planner.profile_writes:
            if write.new_wrapped:  # a new data key: details are sealed under it now
                self._ciphers.pop(write.account, None)
        self._cache_head = (planner.head.sequence, planner.head.hash, planner.head.epoch)
        return results

    def _reconcile(
        self, tx: sql.WriteTx, families: dict[str, Family], spenders: set[str]
    ) -> set[str]:
        owners = sorted(o for o in spenders if o in families)
        from_journal = sql.journal_balances(tx, owners)
        bad = set()
        for owner in owners:
            stored = {a: n for a, n in families[owner].accounts.items() if n}
            summed = {a: n for a, n in from_journal.items() if owner_of(a) == owner}
            if stored != summed:
                bad.add(owner)
                log.critical("balance_not_reconciled", member=owner)
            else:
                self._reconciled.add(owner)
        return bad

    def _scrub_wal(self, erasures: int) -> None:
        """SQLite, after a commit that erased members: the deleted rows were
        zeroed in their pages (secure_delete), but the WAL still holds the
        page images from before; truncate it before the erasure is answered.
        A reader of an older snapshot can hold that off: then the next
        commits retry, without waiting."""
        timeout_ms = 5000 if erasures else 0
        if truncate_wal(self._db.sqlite_path, timeout_ms):
            if self._scrub_pending or erasures:
                log.info("erasure_wal_truncated", erasures=erasures)
            self._scrub_pending = False
        elif not self._scrub_pending:
            self._scrub_pending = True
            log.warning("erasure_wal_truncate_deferred", erasures=erasures)

    def _ciphers_for(
        self, tx: sql.WriteTx, commands: list[Command], accounts: set[str]
    ) -> Callable[[str], FieldCipher]:
        """A lookup of each member's cipher: keys of the batch's accounts are
        loaded in one query (or taken from the cache, or from the batch's own
        enrollments), others on demand, and unwrapped on first use."""
        vault = self._vault
        assert vault is not None
        if len(self._ciphers) > _CIPHER_LIMIT:
            self._ciphers.clear()
        wrapped: dict[str, list[StoredKey]] = {
            c.account: [StoredKey(c.sealed.dek_version, c.sealed.kek_version, c.sealed.wrapped_dek)]
            for c in commands
            if isinstance(c, Enroll)
        }
        missing = (
            {a for a in accounts if a.startswith("mbr_")} - self._ciphers.keys() - wrapped.keys()
        )
        if missing:
            wrapped.update(sql.load_member_keys(tx, missing))
        ciphers = self._ciphers

        def lookup(member: str) -> FieldCipher:
            cipher = ciphers.get(member)
            if cipher is not None:
                return cipher
            if member not in wrapped:
                wrapped.update(sql.load_member_keys(tx, {member}))
            keys = wrapped.get(member)
            if not keys:  # every open account has one (server start-up backfills)
                raise IntegrityError("member_account_id: the account has no data key")
            try:
                cipher = vault.cipher(member, keys)
            except DecryptionError:
                log.error("member_key_unwrap_failed", member_account_id=member)
                raise IntegrityError(
                    "member_account_id: the member's data key failed to open"
                ) from None
            ciphers[member] = cipher
            return cipher

        return lookup

    def _details_checks(
        self, tx: sql.WriteTx, commands: list[Command], accounts: set[str]
    ) -> tuple[DetailsSealer, SameDetails]:
        """How the planner seals details, and how it tells whether a replayed
        request carried the details of the entry it first made (idempotency
        fingerprints leave details out: they would outlive an erasure)."""
        if self._vault is None:
            return clear_details, same_clear_details
        lookup = self._ciphers_for(tx, commands, accounts)

        def seal(member: str, details: EntryDetails) -> bytes:
            return seal_details(lookup(member), details)

        def same(sequence: int, details: EntryDetails) -> bool:
            found = sql.load_entry_details(tx, sequence)
            if found is None:
                return False
            member, data = found
            if not data:
                return details.is_empty()
            try:
                return open_details(lookup(member), data) == details
            except (IntegrityError, DecryptionError, ValueError):
                return True  # unreadable (the member was erased): a replay cannot be told apart

        return seal, same

    def _plan(self, tx: sql.WriteTx, commands: list[Command]) -> tuple[BatchPlanner, list[Outcome]]:
        head = sql.lock_head(tx)
        originals = sql.load_originals(
            tx, {c.original_sequence for c in commands if isinstance(c, Reverse)}
        )
        named = {c.hold_sequence for c in commands if isinstance(c, Capture | Release)}
        named_vouchers = {
            c.voucher for c in commands if isinstance(c, RedeemVoucher | CancelVoucher)
        }
        holds = sql.load_open_holds(tx, set(), named)
        ended = sql.load_ended_holds(tx, named - holds.keys()) if named else {}
        owners: set[str] = set()
        for c in commands:
            if isinstance(
                c,
                Earn | Redeem | Enroll | Erase | Hold | Exchange | Settle | Capture | Release,
            ):
                owners.add(c.account)
            elif isinstance(c, Transfer):
                owners.update((c.account, c.to_account))
            elif isinstance(c, Refer):
                owners.update((c.account, c.referred))
            elif isinstance(c, ClaimReward | CancelVoucher):
                owners.add(c.account)
        # open vouchers the batch names, and those of its members (which
        # expire when due, and count towards a reward's per-member limit)
        vouchers, ended_vouchers = sql.load_vouchers(tx, owners, named_vouchers)
        owners.update(v.owner for v in vouchers.values())
        owners.update(o.owner for o in originals.values())
        owners.update(h.owner for h in holds.values())
        owners.discard("")
        # the lots a reversal of a redeem or capture, or a voucher's cancel,
        # gives points back to
        lots = {
            available_form(p.from_account)
            for o in originals.values()
            if o.kind != KIND_EARN
            for p in o.postings
            if is_member_account(p.from_account)
        }
        lots.update(
            available_form(p.from_account)
            for c in commands
            if isinstance(c, CancelVoucher) and c.voucher in vouchers
            for p in vouchers[c.voucher].postings
        )
        programs = set(PROGRAM_ACCOUNTS) | {PROGRAM_EXPIRED}
        programs.update(p.from_account for o in originals.values() for p in o.postings)
        programs.update(issued_account(r) for r in self._rule_ids)
        programs.update(PARTNER_PREFIX + p.id for p in self._program.partners)
        offline = [c for c in commands if isinstance(c, Redeem) and c.offline]
        programs.update(c.shortfall_account for c in offline)  # docs/outage.md
        settled = [c for c in commands if isinstance(c, SettleShortfall)]
        programs.update(c.store_account for c in settled)
        programs.update([PROGRAM_SETTLED] if settled else [])
        programs.update(voucher_account(r.id) for r in self._program.rewards)
        programs.update(voucher_account(v.reward_id) for v in vouchers.values())
        programs = {a for a in programs if not is_member_account(a)}
        families, balances = self._state(tx, head, owners, programs, lots)
        # spending relies on balances reconciled with the journal: the first
        # time a family spends since this writer read it from the database,
        # its accounts are summed from its postings and compared
        spenders = {s for c in commands if (s := spender_of(c)) and s not in self._reconciled}
        unreconciled = self._reconcile(tx, families, spenders) if spenders else set()
        # referrers of the batch's members: a first purchase rewards them, a
        # refund inside the window takes the reward back
        referrers = {f.stats.referrer for f in families.values() if f.stats.referrer}
        if referrers - families.keys():
            more, _ = self._state(tx, head, referrers - families.keys(), set(), set())
            families.update(more)
        # a refund of a first purchase may take back the referrer's reward
        rewards = (
            {f.stats.reward_seq for f in families.values() if f.stats.reward_seq}
            if any(isinstance(c, Reverse) for c in commands)
            else set()
        )
        if rewards - originals.keys():
            originals.update(sql.load_originals(tx, rewards - originals.keys()))
        idempotency = sql.load_idempotency(
            tx,
            {
                (c.meta.channel_id, c.meta.idempotency_key)
                for c in commands
                if not isinstance(c, Settle | WriteProfile)
            },
            self._idem,
        )
        applied: dict[bytes, int] = {}
        if self._idem is not None:  # the planner keeps and stores digests only
            commands = [self._idem.command(c) for c in commands]
            # requests without a record: is their entry in the journal anyway?
            unknown = [
                request_digest(c.meta)
                for c in commands
                if not isinstance(c, Settle | WriteProfile)
                and (c.meta.channel_id, c.meta.idempotency_key) not in idempotency
            ]
            if unknown:
                applied = sql.load_applied(tx, unknown)
        window = self._program.referrals.window_days * 86_400_000_000
        facts = sql.load_referral_facts(
            tx,
            {(c.account, c.referred, c.device_token) for c in commands if isinstance(c, Refer)},
            self._clock() - window,
        )
        seal, same = self._details_checks(tx, commands, owners)
        profiles = sql.load_profiles(
            tx, {c.account for c in commands if isinstance(c, WriteProfile)}
        )
        legacy = any(p.committed is None and p.stored for p in profiles.values())
        planner = BatchPlanner(
            head=head,
            now_us=self._clock(),
            balances=balances,
            families=families,
            holds=holds,
            ended=ended,
            program=self._program,
            max_points=self._max_points,
            seal=seal,
            same_details=same,
            originals=originals,
            referral_facts=facts,
            idempotency=idempotency,
            applied=applied,
            unreconciled=unreconciled,
            profiles=profiles,
            legacy_ok=not sql.task_done(tx, LEGACY_TASK) if legacy else True,
            vouchers=vouchers,
            ended_vouchers=ended_vouchers,
            rewards_taken=sql.load_reward_stock(
                tx, {c.reward_id for c in commands if isinstance(c, ClaimReward)}
            ),
        )
        for owner in sorted(families):
            planner.settle(owner)
        results: list[Outcome] = []
        for command in commands:
            try:
                results.append(planner.apply(command))
            except LedgerError as err:
                results.append(err)
        return planner, results
