"""gRPC handlers for loyalty.ledger.v1.LedgerService (grpc.aio).

Each handler validates (ledger/service/messages.py), then either hands a
command to the appender and awaits its committed response, or reads in a
worker thread so the event loop never blocks on the database. Handlers
raise LedgerError; ledger/service/observe.py turns it into a status.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger import validation as v
from ledger.appender import Appender
from ledger.config import Limits
from ledger.errors import NotFoundError
from ledger.service import messages as m
from ledger.storage.journal_reads import JournalReads

if TYPE_CHECKING:  # generic only in the type stubs
    Context = grpc.aio.ServicerContext[object, object]


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, *, appender: Appender, reads: JournalReads, limits: Limits) -> None:
        self._appender = appender
        self._reads = reads
        self._limits = limits

    # Mutating calls return the response already serialized: the bytes the
    # appender stored with the idempotency key, sent as they are (see
    # ledger/service/observe.py), so a replay is byte for byte the first answer.

    async def OpenAccount(self, request: pb.OpenAccountRequest, context: Context) -> bytes:
        return await self._appender.append(m.open_account_command(request))

    async def Earn(self, request: pb.EarnRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(m.earn_command(request, limit=limit))

    async def Redeem(self, request: pb.RedeemRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(m.redeem_command(request, limit=limit))

    async def Reverse(self, request: pb.ReverseRequest, context: Context) -> bytes:
        limit = self._limits.max_points_per_entry
        return await self._appender.append(m.reverse_command(request, limit=limit))

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: Context
    ) -> pb.GetBalanceResponse:
        account = v.member_account_id(request.member_account_id)
        found = await asyncio.to_thread(self._reads.balance, account)
        if found is None:
            raise NotFoundError("member_account_id: no such account")
        points, as_of = found
        return pb.GetBalanceResponse(
            balance=pb.Balance(member_account_id=account, points=points, as_of_sequence=as_of)
        )

    async def GetEntry(self, request: pb.GetEntryRequest, context: Context) -> pb.GetEntryResponse:
        seq = v.sequence(request.sequence, "sequence")
        stored = await asyncio.to_thread(self._reads.entry, seq)
        if stored is None:
            raise NotFoundError("sequence: no such entry")
        return pb.GetEntryResponse(entry=m.entry_message(stored))

    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: Context
    ) -> pb.ListEntriesResponse:
        account = v.member_account_id(request.member_account_id)
        size = v.page_size(request.page_size)
        before = m.decode_page_token(request.page_token)
        found = await asyncio.to_thread(self._reads.history, account, before, size + 1)
        if found is None:
            raise NotFoundError("member_account_id: no such account")
        page = found[:size]
        token = m.encode_page_token(page[-1].entry.sequence) if len(found) > size else ""
        return pb.ListEntriesResponse(
            entries=[m.entry_message(s) for s in page], next_page_token=token
        )
