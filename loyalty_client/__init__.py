"""loyalty_client: the Python SDK for channel systems (store tills, apps,
partners) that call the loyalty ledger (docs/client-sdk.md).

    from loyalty_client import LedgerClient, credentials

    creds = credentials(ca_file="data/certs/ca.pem", token=os.environ["LEDGER_TOKEN"])
    with LedgerClient("127.0.0.1:50051", creds, channel_id="pos-0001", store_id="store-0001") as c:
        earned = c.earn(account, points=120)
        receipt = c.receipt(earned.entry, public_key=JOURNAL_KEY)  # verified here

Sync (``LedgerClient``) and asyncio (``AsyncLedgerClient``) clients with
typed calls; every mutating call gets an idempotency key once and keeps it
on every retry; retries with backoff only where a retry is safe and useful;
errors as exceptions carrying the server's decoded details; receipts
verified client-side against the journal's published key; a persistent
offline queue for a store that replays through ReplayOffline.
"""

from loyalty_client.aio import AsyncLedgerClient
from loyalty_client.client import LedgerClient
from loyalty_client.credentials import credentials
from loyalty_client.errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LedgerError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from loyalty_client.offline_queue import OfflineQueue, Outcome
from loyalty_client.receipts import Receipt, ReceiptError, verify_receipt
from loyalty_client.retry import RetryPolicy

__all__ = [
    "AlreadyExists",
    "AsyncLedgerClient",
    "Conflict",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LedgerClient",
    "LedgerError",
    "NotFound",
    "OfflineQueue",
    "Outcome",
    "PermissionDenied",
    "Receipt",
    "ReceiptError",
    "ResourceExhausted",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "credentials",
    "verify_receipt",
]
