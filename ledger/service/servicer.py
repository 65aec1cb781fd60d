"""gRPC handlers for loyalty.ledger.v1.LedgerService.

Each handler validates (ledger/service/messages.py), then either hands a
command to the appender and waits for its committed response, or reads.
Handlers raise LedgerError; the interceptor turns it into a status.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger import validation as v
from ledger.appender import Appender
from ledger.commands import Command
from ledger.errors import NotFoundError, UnavailableError
from ledger.service import messages as m
from ledger.storage.journal_reads import JournalReads


@dataclass(frozen=True, slots=True)
class Limits:
    max_points_per_entry: int = 1_000_000  # points
    wait_seconds: float = 30.0  # how long a handler waits for its commit


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, *, appender: Appender, reads: JournalReads, limits: Limits) -> None:
        self._appender = appender
        self._reads = reads
        self._limits = limits

    def _append(self, command: Command) -> bytes:
        future = self._appender.submit(command)
        try:
            return future.result(timeout=self._limits.wait_seconds)
        except FutureTimeout:
            # the command may still commit: a retry with the same key is safe
            raise UnavailableError(
                "journal: commit did not finish in time; retry with the same idempotency_key"
            ) from None

    def OpenAccount(
        self, request: pb.OpenAccountRequest, context: grpc.ServicerContext
    ) -> pb.OpenAccountResponse:
        return pb.OpenAccountResponse.FromString(self._append(m.open_account_command(request)))

    def Earn(self, request: pb.EarnRequest, context: grpc.ServicerContext) -> pb.EarnResponse:
        command = m.earn_command(request, limit=self._limits.max_points_per_entry)
        return pb.EarnResponse.FromString(self._append(command))

    def Redeem(self, request: pb.RedeemRequest, context: grpc.ServicerContext) -> pb.RedeemResponse:
        command = m.redeem_command(request, limit=self._limits.max_points_per_entry)
        return pb.RedeemResponse.FromString(self._append(command))

    def Reverse(
        self, request: pb.ReverseRequest, context: grpc.ServicerContext
    ) -> pb.ReverseResponse:
        command = m.reverse_command(request, limit=self._limits.max_points_per_entry)
        return pb.ReverseResponse.FromString(self._append(command))

    def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.ServicerContext
    ) -> pb.GetBalanceResponse:
        account = v.member_account_id(request.member_account_id)
        found = self._reads.balance(account)
        if found is None:
            raise NotFoundError("member_account_id: no such account")
        points, as_of = found
        return pb.GetBalanceResponse(
            balance=pb.Balance(member_account_id=account, points=points, as_of_sequence=as_of)
        )

    def GetEntry(
        self, request: pb.GetEntryRequest, context: grpc.ServicerContext
    ) -> pb.GetEntryResponse:
        seq = v.sequence(request.sequence, "sequence")
        stored = self._reads.entry(seq)
        if stored is None:
            raise NotFoundError("sequence: no such entry")
        return pb.GetEntryResponse(entry=m.entry_message(stored))

    def ListEntries(
        self, request: pb.ListEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListEntriesResponse:
        account = v.member_account_id(request.member_account_id)
        size = v.page_size(request.page_size)
        before = m.decode_page_token(request.page_token)
        if not self._reads.account_exists(account):
            raise NotFoundError("member_account_id: no such account")
        found = self._reads.history(account, before, size + 1)
        page = found[:size]
        token = m.encode_page_token(page[-1].entry.sequence) if len(found) > size else ""
        return pb.ListEntriesResponse(
            entries=[m.entry_message(s) for s in page], next_page_token=token
        )
