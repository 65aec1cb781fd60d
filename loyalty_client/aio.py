"""The asyncio client (``AsyncLedgerClient``): the same calls as
``LedgerClient``, awaitable, on a ``grpc.aio`` channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from loyalty.audit.v1 import audit_pb2 as apb
from loyalty.audit.v1 import audit_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from loyalty_client.client import OnRetry
from loyalty_client.errors import from_rpc_error
from loyalty_client.receipts import Receipt, verify_receipt
from loyalty_client.requests import Requests
from loyalty_client.retry import RetryPolicy


class AsyncLedgerClient:
    """See ``LedgerClient``; use ``async with`` or ``await close()``."""

    def __init__(
        self,
        address: str,
        credentials: grpc.ChannelCredentials | None = None,
        *,
        channel_id: str,
        store_id: str = "",
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        insecure: bool = False,
        on_retry: OnRetry | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if credentials is None and not insecure:
            raise ValueError("credentials: required (or insecure=True for a development server)")
        self.requests = Requests(channel_id, store_id)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.channel = (
            grpc.aio.secure_channel(address, credentials, options=list(options))
            if credentials is not None
            else grpc.aio.insecure_channel(address, options=list(options))
        )
        self.ledger = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.members = members_pb2_grpc.MemberServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(
        self, method: Callable[..., Any], request: Any, timeout: float | None = None
    ) -> Any:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=timeout or self.timeout)
            except grpc.RpcError as raw:
                err = from_rpc_error(raw)
            if not self.retry.retryable(err) or attempt >= self.retry.max_attempts:
                raise err
            wait = self.retry.delay(attempt, err)
            if time.monotonic() - started + wait > self.retry.total_timeout:
                raise err
            if self.on_retry is not None:
                self.on_retry("", attempt, err, wait)
            await asyncio.sleep(wait)

    async def open_account(self, *, key: str | None = None) -> str:
        response = await self.call(self.ledger.OpenAccount, self.requests.open_account(key))
        return str(response.member_account_id)

    async def enroll(
        self, *, name: str = "", phone: str = "", email: str = "", key: str | None = None
    ) -> str:
        request = self.requests.enroll(key, name, phone, email)
        return str((await self.call(self.members.Enroll, request)).member_account_id)

    async def find_member(self, *, phone: str = "", email: str = "") -> list[str]:
        if bool(phone) == bool(email):
            raise ValueError("find_member: give exactly one of phone or email")
        request = (
            mpb.FindMemberRequest(phone=phone) if phone else mpb.FindMemberRequest(email=email)
        )
        return list((await self.call(self.members.FindMember, request)).member_account_ids)

    async def earn(
        self,
        account: str,
        points: int = 0,
        *,
        purchase_minor: int | None = None,
        currency: str = "",
        categories: Iterable[str] = (),
        external_id: str = "",
        key: str | None = None,
    ) -> pb.EarnResponse:
        request = self.requests.earn(
            key, account, points, purchase_minor, currency, categories, external_id
        )
        response: pb.EarnResponse = await self.call(self.ledger.Earn, request)
        return response

    async def redeem(
        self, account: str, points: int, *, external_id: str = "", key: str | None = None
    ) -> pb.RedeemResponse:
        request = self.requests.redeem(key, account, points, external_id)
        response: pb.RedeemResponse = await self.call(self.ledger.Redeem, request)
        return response

    async def hold(
        self, account: str, points: int, *, minutes: int = 0, key: str | None = None
    ) -> pb.HoldResponse:
        request = self.requests.hold(key, account, points, minutes)
        response: pb.HoldResponse = await self.call(self.ledger.Hold, request)
        return response

    async def capture_hold(
        self, account: str, hold_sequence: int, points: int | None = None, *, key: str | None = None
    ) -> pb.CaptureHoldResponse:
        request = self.requests.capture_hold(key, account, hold_sequence, points)
        response: pb.CaptureHoldResponse = await self.call(self.ledger.CaptureHold, request)
        return response

    async def release_hold(
        self, account: str, hold_sequence: int, *, key: str | None = None
    ) -> pb.ReleaseHoldResponse:
        request = self.requests.release_hold(key, account, hold_sequence)
        response: pb.ReleaseHoldResponse = await self.call(self.ledger.ReleaseHold, request)
        return response

    async def reverse(
        self,
        account: str,
        original_sequence: int,
        points: int | None = None,
        *,
        key: str | None = None,
    ) -> pb.ReverseResponse:
        request = self.requests.reverse(key, account, original_sequence, points)
        response: pb.ReverseResponse = await self.call(self.ledger.Reverse, request)
        return response

    async def get_balance(self, account: str) -> pb.Balance:
        request = pb.GetBalanceRequest(member_account_id=account)
        response: pb.GetBalanceResponse = await self.call(self.ledger.GetBalance, request)
        return response.balance

    async def replay_offline(self, items: Sequence[pb.ReplayItem]) -> pb.ReplayOfflineResponse:
        request = pb.ReplayOfflineRequest(items=list(items))
        response: pb.ReplayOfflineResponse = await self.call(self.ledger.ReplayOffline, request)
        return response

    async def receipt(
        self, entry: pb.Entry | int, *, public_key: str, origin: str | None = None
    ) -> Receipt:
        sequence = entry if isinstance(entry, int) else entry.sequence
        expected = None if isinstance(entry, int) else bytes(entry.hash) or None
        request = apb.GetInclusionProofRequest(log=apb.LOG_JOURNAL, sequence=sequence)
        proof = await self.call(self.audit.GetInclusionProof, request)
        return verify_receipt(
            proof, public_key, sequence=sequence, entry_hash=expected, origin=origin
        )
