"""What the sync and asyncio clients share: their configuration, stubs,
the retry decision and the receipt request."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from loyalty.audit.v1 import audit_pb2 as apb
from loyalty.audit.v1 import audit_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from loyalty_client.errors import LedgerError
from loyalty_client.requests import Requests
from loyalty_client.retry import RetryPolicy

OnRetry = Callable[[str, int, LedgerError, float], None]  # method, attempt, error, wait


class ClientBase:
    """``credentials``: from ``loyalty_client.credentials`` (TLS, mTLS, token);
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
        self.channel = self._open(address, credentials, list(options))
        self.ledger = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.members = members_pb2_grpc.MemberServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)

    def _open(
        self, address: str, credentials: grpc.ChannelCredentials | None, options: list[Any]
    ) -> Any:
        raise NotImplementedError

    def _deadline(self, timeout: float | None, started: float) -> float:
        """This attempt's deadline: the call's (or the client's default),
        never past what is left of the policy's ``total_timeout``."""
        left = self.retry.total_timeout - (time.monotonic() - started)
        return max(0.001, min(timeout or self.timeout, left))

    def _wait_or_raise(self, method: Any, attempt: int, err: LedgerError, started: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``; raises ``err``
        when it is an answer or the policy is spent."""
        if not self.retry.retryable(err) or attempt >= self.retry.max_attempts:
            raise err
        wait = self.retry.delay(attempt, err)
        if time.monotonic() - started + wait > self.retry.total_timeout:
            raise err
        if self.on_retry is not None:
            name = getattr(method, "_method", b"")
            self.on_retry(
                name.decode() if isinstance(name, bytes) else str(name), attempt, err, wait
            )
        return wait


def find_request(phone: str, email: str) -> mpb.FindMemberRequest:
    if bool(phone) == bool(email):
        raise ValueError("find_member: give exactly one of phone or email")
    return mpb.FindMemberRequest(phone=phone) if phone else mpb.FindMemberRequest(email=email)


def proof_request(entry: pb.Entry | int) -> tuple[apb.GetInclusionProofRequest, bytes | None]:
    """The inclusion-proof request of ``entry`` and the hash it must have."""
    sequence = entry if isinstance(entry, int) else entry.sequence
    expected = None if isinstance(entry, int) else bytes(entry.hash) or None
    return apb.GetInclusionProofRequest(log=apb.LOG_JOURNAL, sequence=sequence), expected
