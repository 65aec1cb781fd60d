"""The asyncio client (``AsyncLedgerClient``): the same calls as
``LedgerClient``, awaitable, on a ``grpc.aio`` channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb

from loyalty_client.base import ClientBase, find_request, proof_request
from loyalty_client.errors import from_rpc_error
from loyalty_client.receipts import Receipt, verify_receipt


class AsyncLedgerClient(ClientBase):
    """See ``LedgerClient``; use ``async with`` or ``await close()``."""

    def _open(
        self, address: str, credentials: grpc.ChannelCredentials | None, options: list[Any]
    ) -> Any:
        if credentials is None:
            return grpc.aio.insecure_channel(address, options=options)
        return grpc.aio.secure_channel(address, credentials, options=options)

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
                return await method(request, timeout=self._deadline(timeout, started))
            except grpc.RpcError as raw:
                err = from_rpc_error(raw)
            await asyncio.sleep(self._wait_or_raise(method, attempt, err, started))

    async def open_account(self, *, key: str | None = None) -> str:
        response = await self.call(self.ledger.OpenAccount, self.requests.open_account(key))
        return str(response.member_account_id)

    async def enroll(
        self, *, name: str = "", phone: str = "", email: str = "", key: str | None = None
    ) -> str:
        request = self.requests.enroll(key, name, phone, email)
        return str((await self.call(self.members.Enroll, request)).member_account_id)

    async def find_member(self, *, phone: str = "", email: str = "") -> list[str]:
        request = find_request(phone, email)
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
        request, expected = proof_request(entry)
        sequence = request.sequence
        proof = await self.call(self.audit.GetInclusionProof, request)
        return verify_receipt(
            proof, public_key, sequence=sequence, entry_hash=expected, origin=origin
        )
