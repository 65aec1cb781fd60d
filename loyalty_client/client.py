"""The synchronous client (``LedgerClient``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb

from loyalty_client.base import ClientBase, OnRetry, find_request, proof_request
from loyalty_client.errors import from_rpc_error
from loyalty_client.receipts import Receipt, verify_receipt

__all__ = ["LedgerClient", "OnRetry"]


class LedgerClient(ClientBase):
    """One channel's client of the ledger (see ``ClientBase`` for the
    arguments); use ``with`` or ``close()``."""

    def _open(
        self, address: str, credentials: grpc.ChannelCredentials | None, options: list[Any]
    ) -> Any:
        if credentials is None:
            return grpc.insecure_channel(address, options=options)
        return grpc.secure_channel(address, credentials, options=options)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the retry loop ----------------------------------------------------

    def call(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        """``method(request)`` with this client's deadline and retry policy;
        a failure is raised as a LedgerError subclass."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=self._deadline(timeout, started))
            except grpc.RpcError as raw:
                err = from_rpc_error(raw)
            time.sleep(self._wait_or_raise(method, attempt, err, started))

    # -- members -------------------------------------------------------------

    def open_account(self, *, key: str | None = None) -> str:
        """A new member account without personal data; its id."""
        request = self.requests.open_account(key)
        return str(self.call(self.ledger.OpenAccount, request).member_account_id)

    def enroll(
        self, *, name: str = "", phone: str = "", email: str = "", key: str | None = None
    ) -> str:
        """Enroll a member (phone or e-mail required); the account id."""
        request = self.requests.enroll(key, name, phone, email)
        return str(self.call(self.members.Enroll, request).member_account_id)

    def find_member(self, *, phone: str = "", email: str = "") -> list[str]:
        """Account ids of the member with this phone or e-mail (no personal data)."""
        request = find_request(phone, email)
        return list(self.call(self.members.FindMember, request).member_account_ids)

    # -- points --------------------------------------------------------------

    def earn(
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
        """Credit points, or let the program compute them from the purchase."""
        request = self.requests.earn(
            key, account, points, purchase_minor, currency, categories, external_id
        )
        response: pb.EarnResponse = self.call(self.ledger.Earn, request)
        return response

    def redeem(
        self, account: str, points: int, *, external_id: str = "", key: str | None = None
    ) -> pb.RedeemResponse:
        request = self.requests.redeem(key, account, points, external_id)
        response: pb.RedeemResponse = self.call(self.ledger.Redeem, request)
        return response

    def hold(
        self, account: str, points: int, *, minutes: int = 0, key: str | None = None
    ) -> pb.HoldResponse:
        request = self.requests.hold(key, account, points, minutes)
        response: pb.HoldResponse = self.call(self.ledger.Hold, request)
        return response

    def capture_hold(
        self, account: str, hold_sequence: int, points: int | None = None, *, key: str | None = None
    ) -> pb.CaptureHoldResponse:
        request = self.requests.capture_hold(key, account, hold_sequence, points)
        response: pb.CaptureHoldResponse = self.call(self.ledger.CaptureHold, request)
        return response

    def release_hold(
        self, account: str, hold_sequence: int, *, key: str | None = None
    ) -> pb.ReleaseHoldResponse:
        request = self.requests.release_hold(key, account, hold_sequence)
        response: pb.ReleaseHoldResponse = self.call(self.ledger.ReleaseHold, request)
        return response

    def reverse(
        self,
        account: str,
        original_sequence: int,
        points: int | None = None,
        *,
        key: str | None = None,
    ) -> pb.ReverseResponse:
        request = self.requests.reverse(key, account, original_sequence, points)
        response: pb.ReverseResponse = self.call(self.ledger.Reverse, request)
        return response

    def get_balance(self, account: str) -> pb.Balance:
        request = pb.GetBalanceRequest(member_account_id=account)
        response: pb.GetBalanceResponse = self.call(self.ledger.GetBalance, request)
        return response.balance

    def replay_offline(self, items: Sequence[pb.ReplayItem]) -> pb.ReplayOfflineResponse:
        """Queued operations, each with its own key and time (see OfflineQueue)."""
        request = pb.ReplayOfflineRequest(items=list(items))
        response: pb.ReplayOfflineResponse = self.call(self.ledger.ReplayOffline, request)
        return response

    # -- receipts ------------------------------------------------------------

    def receipt(
        self, entry: pb.Entry | int, *, public_key: str, origin: str | None = None
    ) -> Receipt:
        """Fetch and verify the proof that ``entry`` (a response's entry, or
        a sequence) is in the signed journal; ReceiptError if it is not."""
        request, expected = proof_request(entry)
        sequence = request.sequence
        proof = self.call(self.audit.GetInclusionProof, request)
        return verify_receipt(
            proof, public_key, sequence=sequence, entry_hash=expected, origin=origin
        )
