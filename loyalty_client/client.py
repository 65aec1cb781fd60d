"""The synchronous client (``LedgerClient``)."""

from __future__ import annotations

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

from loyalty_client.errors import LedgerError, from_rpc_error
from loyalty_client.receipts import Receipt, verify_receipt
from loyalty_client.requests import Requests
from loyalty_client.retry import RetryPolicy

OnRetry = Callable[[str, int, LedgerError, float], None]  # method, attempt, error, wait


class LedgerClient:
    """One channel's client of the ledger.

    ``credentials``: from ``loyalty_client.credentials`` (TLS, mTLS, token);
    None with ``insecure=True`` for a development server (``--plaintext``).
    ``timeout``: the deadline of each attempt, in seconds. Every mutating
    method takes ``key``: the idempotency key of the operation (a fresh one
    when not given); retries of that call always send the same key, and
    calling again with the same key after a crash returns the first result.
    """

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
        self._sleep: Callable[[float], None] = time.sleep
        self.channel = (
            grpc.secure_channel(address, credentials, options=list(options))
            if credentials is not None
            else grpc.insecure_channel(address, options=list(options))
        )
        self.ledger = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.members = members_pb2_grpc.MemberServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)

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
        name = getattr(method, "_method", b"").decode() if hasattr(method, "_method") else ""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=timeout or self.timeout)
            except grpc.RpcError as raw:
                err = from_rpc_error(raw)
            if not self.retry.retryable(err) or attempt >= self.retry.max_attempts:
                raise err
            wait = self.retry.delay(attempt, err)
            if time.monotonic() - started + wait > self.retry.total_timeout:
                raise err
            if self.on_retry is not None:
                self.on_retry(name, attempt, err, wait)
            self._sleep(wait)

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
        if bool(phone) == bool(email):
            raise ValueError("find_member: give exactly one of phone or email")
        request = (
            mpb.FindMemberRequest(phone=phone) if phone else mpb.FindMemberRequest(email=email)
        )
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
        sequence = entry if isinstance(entry, int) else entry.sequence
        expected = None if isinstance(entry, int) else bytes(entry.hash) or None
        request = apb.GetInclusionProofRequest(log=apb.LOG_JOURNAL, sequence=sequence)
        proof = self.call(self.audit.GetInclusionProof, request)
        return verify_receipt(
            proof, public_key, sequence=sequence, entry_hash=expected, origin=origin
        )
