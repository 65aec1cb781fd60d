"""gRPC handlers for loyalty.rewards.v1.RewardService: the rewards
catalogue and vouchers (docs/program-rules.md §11)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
from loyalty.rewards.v1 import rewards_pb2 as rpb
from loyalty.rewards.v1 import rewards_pb2_grpc

from access import scope as call_scope
from access.principal import Role
from ledger import validation as v
from ledger.appender import Clock, Journal, system_clock_us
from ledger.errors import NotFoundError
from ledger.program.config import DEFAULT_PROGRAM, Program
from ledger.service import reward_messages as rm
from ledger.service.observe import take_pending_record
from ledger.storage.journal_reads import JournalReads, VoucherRow

T = TypeVar("T")

if TYPE_CHECKING:  # generic only in the type stubs
    Context = grpc.aio.ServicerContext[object, object]

MAX_VOUCHERS_PAGE = 200


class RewardServicer(rewards_pb2_grpc.RewardServiceServicer):
    def __init__(
        self,
        *,
        appender: Journal,
        reads: JournalReads,
        secret: bytes,
        clock: Clock = system_clock_us,
        program: Program = DEFAULT_PROGRAM,
    ) -> None:
        self._appender = appender
        self._reads = reads
        self._secret = secret
        self._clock = clock
        self._program = program

    async def _read(self, read: Callable[..., T], *args: object) -> T:
        if self._reads.inline:
            return read(*args)
        return await asyncio.get_running_loop().run_in_executor(
            self._reads.executor, lambda: read(*args)
        )

    async def ListRewards(
        self, request: rpb.ListRewardsRequest, context: Context
    ) -> rpb.ListRewardsResponse:
        taken = await self._read(self._reads.reward_stock)
        now = self._clock()
        return rpb.ListRewardsResponse(
            rewards=[rm.reward_message(r, taken.get(r.id, 0), now) for r in self._program.rewards]
        )

    # mutating calls: the stored response bytes, completed (see reward_messages)

    async def ClaimReward(self, request: rpb.ClaimRewardRequest, context: Context) -> bytes:
        data = await self._appender.append(rm.claim_command(request), take_pending_record())
        return rm.complete(data, rpb.ClaimRewardResponse, self._program, self._secret)

    async def RedeemVoucher(self, request: rpb.RedeemVoucherRequest, context: Context) -> bytes:
        command = rm.redeem_command(request, self._secret)
        data = await self._appender.append(command, take_pending_record())
        return rm.complete(data, rpb.RedeemVoucherResponse, self._program, None)

    async def CancelVoucher(self, request: rpb.CancelVoucherRequest, context: Context) -> bytes:
        data = await self._appender.append(rm.cancel_command(request), take_pending_record())
        return rm.complete(data, rpb.CancelVoucherResponse, self._program, None)

    async def GetVoucher(
        self, request: rpb.GetVoucherRequest, context: Context
    ) -> rpb.GetVoucherResponse:
        seq = rm.voucher_of(request.code, self._secret)
        row = await self._read(self._reads.voucher, seq)
        if row is None:
            raise NotFoundError("code: no such voucher")
        call_scope.current().member = row.owner  # named in the access record
        return rpb.GetVoucherResponse(voucher=rm.voucher_message(row, self._program, None))

    async def ListVouchers(
        self, request: rpb.ListVouchersRequest, context: Context
    ) -> rpb.ListVouchersResponse:
        account = v.member_account_id(request.member_account_id)
        size = v.page_size(request.page_size, default=50)
        size = min(size, MAX_VOUCHERS_PAGE)
        rows = await self._read(self._reads.vouchers_of, account, request.include_ended, size)
        return rpb.ListVouchersResponse(
            vouchers=[rm.voucher_message(r, self._program, self._code_secret(r)) for r in rows]
        )

    def _code_secret(self, row: VoucherRow) -> bytes | None:
        """Codes go to the channel a voucher was claimed through (the member's
        app shows it again), never to staff: a code is as good as the goods."""
        principal = call_scope.current().principal
        if principal is None:  # development mode, no credentials
            return self._secret
        if principal.role is Role.CHANNEL and principal.channel == row.channel_id:
            return self._secret
        return None
