"""Data minimization at ingest, over the wire: metadata that looks like
personal data is refused (INVALID_ARGUMENT naming the field and the
detector, never the value) and leaves no trace; near-misses pass."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.server import LedgerServer
from tests.conftest import ctx, head_sequence, key, open_account

# obviously fake: scheme test numbers, the standard PRC sample ID, example.com
REFUSED = [
    ("context.external_transaction_id", "4111111111111111", "payment_card"),
    ("context.external_transaction_id", "card-5555-5555-5555-4444", "payment_card"),
    ("context.external_transaction_id", "11010519491231002X", "prc_resident_id"),
    ("context.external_transaction_id", "GB82WEST12345698765432", "iban"),
    ("context.external_transaction_id", "buyer@example.com", "email"),
    ("context.external_transaction_id", "+8613800138000", "phone"),
    ("context.store_id", "13800138000", "phone"),
]
PASSING = [
    "ORD-2026-000123",  # an order number, not a phone
    "4111111111111112",  # card-shaped, wrong Luhn digit
    "11010519491231002Y",  # PRC-ID-shaped, wrong check character
    "T-20261124-0001",
]


def _context(field: str, value: str) -> pb.ChannelContext:
    if field == "context.store_id":
        return ctx(store_id=value)
    return ctx(external=value)


@pytest.mark.parametrize(
    ("field", "value", "detector"), REFUSED, ids=[r[2] + "-" + r[0][8:] for r in REFUSED]
)
def test_personal_data_in_metadata_is_refused(
    stub, server: LedgerServer, field: str, value: str, detector: str
) -> None:
    account = open_account(stub)
    seq = head_sequence(server)
    request = pb.EarnRequest(
        idempotency_key=key(), context=_context(field, value), member_account_id=account, points=5
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.Earn(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}: looks like personal data ({detector})")
    assert value not in err.value.details()
    status = rpc_status.from_call(err.value)
    bad = error_details_pb2.BadRequest()
    assert status is not None and status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == field
    assert value not in bad.field_violations[0].description
    assert head_sequence(server) == seq


@pytest.mark.parametrize("value", PASSING)
def test_near_misses_pass(stub, value: str) -> None:
    account = open_account(stub)
    earned = stub.Earn(
        pb.EarnRequest(
            idempotency_key=key(), context=ctx(external=value), member_account_id=account, points=5
        )
    )
    read = stub.GetEntry(
        pb.GetEntryRequest(sequence=earned.entry.sequence, purpose="customer_support")
    )
    assert read.entry.external_transaction_id == value
