"""gRPC handlers for loyalty.ledger.v1.LedgerService (grpc.aio).

Each handler validates (ledger/service/messages.py), then either hands a
command to the appender and awaits its committed response, or reads: with
fixed SQL on the event loop itself where a read cannot wait (SQLite, WAL),
in a worker thread where it is a network round trip (PostgreSQL). Handlers
raise LedgerError; ledger/service/observe.py turns it into a status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from access import scope as call_scope
from access.purposes import ORDER_DETAILS
from audit.chain import StoredEntry
from ledger import validation as v
from ledger.appender import Clock, Journal, system_clock_us
from ledger.commands import EntryDetails, open_details
from ledger.config import Limits
from ledger.errors import NotFoundError
from ledger.keys.errors import DecryptionError
from ledger.keys.field_cipher import FieldCipher
from ledger.members.vault import MemberVault
from ledger.program.config import DEFAULT_PROGRAM, Program
from ledger.program.lots import view
from ledger.service import messages as m
from ledger.service import replay
from ledger.service.liability import liability_message
from ledger.service.observe import take_pending_record
from ledger.storage.journal_reads import JournalReads
from ledger.storage.members import MemberStore

T = TypeVar("T")

if TYPE_CHECKING:  # generic only in the type stubs
    Context = grpc.aio.ServicerContext[object, object]


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(
        self,
        *,
        appender: Journal,
        reads: JournalReads,
        limits: Limits,
        vault: MemberVault,
        members: MemberStore,
        clock: Clock = system_clock_us,
        program: Program = DEFAULT_PROGRAM,
    ) -> None:
        self._clock = clock
        self._program = program
        self._appender = appender
        self._reads = reads
        self._limits = limits
        self._vault = vault
        self._members = members

    async def _read(self, read: Callable[..., T], *args: object) -> T:
        """A hot-path read: inline where it cannot block, else in a thread."""
        if self._reads.inline:
            return read(*args)
        return await asyncio.get_running_loop().run_in_executor(
            self._reads.executor, lambda: read(*args)
        )

    def _messages(self, entries: list[StoredEntry]) -> list[pb.Entry]:
        """Entries as sent; order details opened only when the call's purpose
        shows them, and only while the member's key exists (an erased
        member's details stay withheld: they can no longer be read)."""
        scope = call_scope.current()
        members = {s.entry.member_account() for s in entries} - {""}
        if len(members) == 1 and not scope.member:
            scope.member = members.pop()  # named in the access record
        if not scope.shows(ORDER_DETAILS):
            return [m.entry_message(s) for s in entries]
        ciphers: dict[str, FieldCipher | None] = {}
        out = []
        for stored in entries:
            details = self._open(stored, ciphers)
            if details is not None and not details.is_empty():
                scope.returned(ORDER_DETAILS)
            out.append(m.entry_message(stored, details))
        return out

    def _open(
        self, stored: StoredEntry, ciphers: dict[str, FieldCipher | None]
    ) -> EntryDetails | None:
        """The entry's details, or None when they cannot be shown: the
        member's keys are gone (erased), or they do not open. Clear details
        (accounts from before data keys existed) follow the same rule."""
        data = stored.entry.details
        if not data:
            return EntryDetails()
        member = stored.entry.member_account()
        if member not in ciphers:
            keys = self._members.keys(member) if member else ()
            try:
                ciphers[member] = self._vault.cipher(member, keys) if keys else None
            except DecryptionError:
                ciphers[member] = None
        cipher = ciphers[member]
        if cipher is None:
            return None
        try:
            return open_details(cipher, data)
        except (DecryptionError, ValueError):
            return None

    # Mutating calls return the response already serialized: the bytes the
    # appender stored with the idempotency key, sent as they are (see
    # ledger/service/observe.py), so a replay is byte for byte the first answer.

    async def OpenAccount(self, request: pb.OpenAccountRequest, context: Context) -> bytes:
        return await self._appender.append(
            m.open_account_command(request, self._vault), take_pending_record()
        )

    async def Earn(self, request: pb.EarnRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.earn_command(request, limit=limit), take_pending_record()
        )

    async def Redeem(self, request: pb.RedeemRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.redeem_command(request, limit=limit), take_pending_record()
        )

    async def Reverse(self, request: pb.ReverseRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.reverse_command(request, limit=limit), take_pending_record()
        )

    async def Hold(self, request: pb.HoldRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.hold_command(request, limit=limit), take_pending_record()
        )

    async def CaptureHold(self, request: pb.CaptureHoldRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.capture_command(request, limit=limit), take_pending_record()
        )

    async def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: Context) -> bytes:
        return await self._appender.append(m.release_command(request), take_pending_record())

    async def Transfer(self, request: pb.TransferRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.transfer_command(request, limit=limit), take_pending_record()
        )

    async def ExchangeOut(self, request: pb.ExchangeOutRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.exchange_out_command(request, limit=limit), take_pending_record()
        )

    async def ExchangeIn(self, request: pb.ExchangeInRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(
            m.exchange_in_command(request, limit=limit), take_pending_record()
        )

    async def ReplayOffline(
        self, request: pb.ReplayOfflineRequest, context: Context
    ) -> pb.ReplayOfflineResponse:
        items = replay.plan(request, limit=self._limits.max_points_per_entry, now_us=self._clock())
        # queued in occurred_at order: the appender applies them in that
        # order; the call's access record goes with the first of them
        record = take_pending_record()
        waits = []
        for item in items:
            if item.command is not None:
                waits.append(self._appender.append(item.command, record))
                record = None
        if record is not None:  # nothing to apply: the record alone
            await self._appender.record(record)
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        return replay.results(items, iter(outcomes))

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: Context
    ) -> pb.GetBalanceResponse:
        account = v.member_account_id(request.member_account_id)
        found = await self._read(self._reads.family, account)
        if found is None:
            raise NotFoundError("member_account_id: no such account")
        family, as_of = found
        return pb.GetBalanceResponse(
            balance=m.balance_message(account, view(family, self._clock()), as_of)
        )

    async def Refer(self, request: pb.ReferRequest, context: Context) -> bytes:
        return await self._appender.append(
            m.refer_command(request, self._vault), take_pending_record()
        )

    async def GetTier(self, request: pb.GetTierRequest, context: Context) -> pb.GetTierResponse:
        account = v.member_account_id(request.member_account_id)
        found = await self._read(self._reads.tier, account)
        if found is None:
            raise NotFoundError("member_account_id: no such account")
        stats, history = found
        return pb.GetTierResponse(
            tier=stats.tier,
            super_fan=stats.referrals >= self._program.referrals.super_fan_chain,
            referrals=stats.referrals,
            pending_referrals=len(stats.pending_rewards),
            next_review=m.timestamp(stats.review_us),
            history=[
                pb.TierChange(time=m.timestamp(t), from_tier=a, to_tier=b, reason=why)
                for t, a, b, why in history
            ],
        )

    async def GetLiability(
        self, request: pb.GetLiabilityRequest, context: Context
    ) -> pb.GetLiabilityResponse:
        found = await asyncio.to_thread(self._reads.liability)
        return liability_message(found)

    async def GetEntry(self, request: pb.GetEntryRequest, context: Context) -> pb.GetEntryResponse:
        seq = v.sequence(request.sequence, "sequence")
        stored = await self._read(self._reads.entry, seq)
        if stored is None:
            raise NotFoundError("sequence: no such entry")
        (entry,) = await asyncio.to_thread(self._messages, [stored])
        return pb.GetEntryResponse(entry=entry)

    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: Context
    ) -> pb.ListEntriesResponse:
        account = v.member_account_id(request.member_account_id)
        size = v.page_size(request.page_size)
        before = m.decode_page_token(request.page_token)
        found = await self._read(self._reads.history, account, before, size + 1)
        if found is None:
            raise NotFoundError("member_account_id: no such account")
        page = found[:size]
        token = m.encode_page_token(page[-1].entry.sequence) if len(found) > size else ""
        entries = await asyncio.to_thread(self._messages, page)
        return pb.ListEntriesResponse(entries=entries, next_page_token=token)
