"""The client SDK (loyalty_client, issue 14 item 3) against a real ledger
over TLS with bearer tokens, the secure default: typed calls, the same
idempotency key on every retry (a lost answer applied once), retries only
on UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED (with the server's
RetryInfo), typed errors with decoded details, receipts verified against
the published key (and forged ones refused), the asyncio client.

The network faults come from a real gRPC proxy between client and ledger
(tests/support/grpc_proxy.py) that loses chosen answers; the ledger itself
is never mocked. Personal data is obviously fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from loyalty.audit.v1 import audit_pb2 as apb
from loyalty.ledger.v1 import ledger_pb2 as pb

from loyalty_client import (
    AsyncLedgerClient,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    LedgerClient,
    NotFound,
    PermissionDenied,
    ReceiptError,
    RetryPolicy,
    Unavailable,
    credentials,
    verify_receipt,
)
from loyalty_client.receipts import Receipt
from tests.support.grpc_proxy import Fault
from tests.support.sdk import FAST, Ledger, running_ledger

EARN = "/loyalty.ledger.v1.LedgerService/Earn"
REDEEM = "/loyalty.ledger.v1.LedgerService/Redeem"


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with running_ledger(db_url, tmp_path) as found:
        yield found


def test_typed_calls_over_tls_with_a_token(ledger: Ledger) -> None:
    with ledger.client() as c:
        account = c.enroll(name="Test Member", phone="+86 138 0000 0001")
        assert c.find_member(phone="13800000001") == [account]
        earned = c.earn(account, 50)
        assert isinstance(earned, pb.EarnResponse) and earned.balance.points == 50
        hold = c.hold(account, 20)
        c.capture_hold(account, hold.hold_sequence, 15)
        assert c.get_balance(account).points == 35
        redeemed = c.redeem(account, 5)
        c.reverse(account, redeemed.entry.sequence)
        assert c.get_balance(account).points == 35
        again = c.hold(account, 10)
        c.release_hold(account, again.hold_sequence)
        assert c.get_balance(account).available == 35


def test_a_lost_answer_is_retried_with_the_same_key_and_applied_once(ledger: Ledger) -> None:
    proxy = ledger.proxy(Fault(EARN, grpc.StatusCode.UNAVAILABLE, after=True))
    retries: list[tuple[int, str]] = []
    try:
        with ledger.client() as direct:
            account = direct.open_account()
        with ledger.client(
            f"127.0.0.1:{proxy.port}",  # type: ignore[attr-defined]
            on_retry=lambda _m, n, err, _w: retries.append((n, err.code.name)),
        ) as c:
            earned = c.earn(account, 30)
        # the ledger saw the earn twice (the first answer was lost on the way
        # back), and applied it once: the retry carried the first key
        assert proxy.forwarded.count(EARN) == 2 and retries == [(1, "UNAVAILABLE")]
        assert earned.balance.points == 30
        with ledger.client() as direct:
            assert direct.get_balance(account).points == 30
        assert ledger.entries(direct, account) == 1
    finally:
        proxy.stop()


def test_rate_limited_calls_wait_for_the_servers_retry_info(ledger: Ledger) -> None:
    proxy = ledger.proxy(
        Fault(EARN, grpc.StatusCode.RESOURCE_EXHAUSTED, after=False, retry_delay=0.2)
    )
    waits: list[float] = []
    try:
        with ledger.client() as direct:
            account = direct.open_account()
        with ledger.client(
            f"127.0.0.1:{proxy.port}",  # type: ignore[attr-defined]
            on_retry=lambda _m, _n, _e, wait: waits.append(wait),
        ) as c:
            assert c.earn(account, 7).balance.points == 7
        assert waits == [pytest.approx(0.2)]  # RetryInfo, not the 0.01 s backoff
        assert proxy.forwarded.count(EARN) == 1  # refused before it reached the ledger
    finally:
        proxy.stop()


def test_answers_are_never_retried_and_carry_their_details(ledger: Ledger) -> None:
    retries: list[int] = []
    with ledger.client(on_retry=lambda _m, n, _e, _w: retries.append(n)) as c:
        account = c.open_account()
        with pytest.raises(InvalidArgument) as bad:
            c.earn(account, -5)
        assert bad.value.field == "points" and bad.value.violations[0].description
        with pytest.raises(FailedPrecondition) as short:
            c.redeem(account, 10)
        assert short.value.metadata.get("available") == "0" and short.value.reason
        with pytest.raises(NotFound):
            c.get_balance("mbr_" + "a" * 26)
        with pytest.raises(PermissionDenied):  # a channel may not read the liability
            c.call(c.ledger.GetLiability, pb.GetLiabilityRequest())
    assert retries == []


def test_a_ledger_that_stays_down_gives_up_after_the_policy(ledger: Ledger) -> None:
    proxy = ledger.proxy(Fault(EARN, grpc.StatusCode.UNAVAILABLE, after=False, times=99))
    try:
        with ledger.client() as direct:
            account = direct.open_account()
        address = f"127.0.0.1:{proxy.port}"  # type: ignore[attr-defined]
        with ledger.client(address) as c, pytest.raises(Unavailable):
            c.earn(account, 1)
        assert proxy.calls.count(EARN) == FAST.max_attempts and proxy.forwarded == []
        assert ledger.entries(direct, account) == 0
    finally:
        proxy.stop()


def test_one_key_for_two_different_requests_is_a_conflict(ledger: Ledger) -> None:
    with ledger.client() as c:
        account = c.open_account()
        c.earn(account, 5, key="sdk-test-key-0001")
        assert c.earn(account, 5, key="sdk-test-key-0001").balance.points == 5  # a replay
        with pytest.raises(Conflict) as err:
            c.earn(account, 6, key="sdk-test-key-0001")
        assert err.value.code == grpc.StatusCode.ALREADY_EXISTS


def test_receipts_verify_against_the_published_key(ledger: Ledger) -> None:
    with ledger.client() as c:
        account = c.open_account()
        earned = c.earn(account, 12)
        receipt = c.receipt(earned.entry, public_key=ledger.journal_key)
        assert receipt.sequence == earned.entry.sequence
        assert receipt.entry_hash == earned.entry.hash and receipt.tree_size >= receipt.sequence
        kept = Receipt.from_json(receipt.to_json(), ledger.journal_key)
        assert kept.root == receipt.root
        with pytest.raises(ReceiptError, match="published key"):  # the access log's key
            c.receipt(earned.entry, public_key=ledger.access_key)
        proof = c.call(
            c.audit.GetInclusionProof,
            apb.GetInclusionProofRequest(log=apb.LOG_JOURNAL, sequence=earned.entry.sequence),
        )
    seq = earned.entry.sequence

    def forged(change: str) -> apb.InclusionProof:
        bad = apb.InclusionProof()
        bad.CopyFrom(proof)
        if change == "entry":
            data = bytearray(bad.entry)
            data[-1] ^= 1
            bad.entry = bytes(data)
        elif change == "hashes" and bad.hashes:
            bad.hashes[0] = bytes(32)
        elif change == "hashes":  # a one-entry tree: no hashes to flip, claim a sibling
            bad.hashes.append(bytes(32))
        elif change == "note":
            bad.checkpoint.signed_note = bad.checkpoint.signed_note.replace(
                f"\n{bad.tree_size}\n", f"\n{bad.tree_size + 1}\n"
            )
        elif change == "size":
            bad.tree_size += 1
        return bad

    for change in ("entry", "hashes", "note", "size"):
        with pytest.raises(ReceiptError):
            verify_receipt(forged(change), ledger.journal_key, sequence=seq)
    with pytest.raises(ReceiptError, match="hash differs"):
        verify_receipt(proof, ledger.journal_key, sequence=seq, entry_hash=bytes(32))
    with pytest.raises(ReceiptError, match="not entry"):
        verify_receipt(proof, ledger.journal_key, sequence=seq + 1)


def test_the_asyncio_client(ledger: Ledger) -> None:
    async def run() -> tuple[int, int]:
        async with AsyncLedgerClient(
            ledger.address, ledger.creds(), channel_id="pos-test", retry=FAST
        ) as c:
            account = await c.open_account()
            results = await asyncio.gather(*(c.earn(account, 3) for _ in range(10)))
            with pytest.raises(FailedPrecondition):
                await c.redeem(account, 31)
            receipt = await c.receipt(results[0].entry, public_key=ledger.journal_key)
            return (await c.get_balance(account)).points, receipt.sequence

    points, sequence = asyncio.run(run())
    assert points == 30 and sequence >= 1


def test_bad_configuration_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="credentials"):
        LedgerClient("127.0.0.1:1", channel_id="pos-test")
    with pytest.raises(ValueError, match="cert_file and key_file"):
        credentials(cert_file="a.pem")
    with pytest.raises(ValueError, match="channel_id"):
        LedgerClient("127.0.0.1:1", insecure=True, channel_id="")
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
