"""First call: open an account, earn, redeem, read the balance."""

import os

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

address = os.environ.get("LEDGER_ADDRESS", "127.0.0.1:50051")
with grpc.insecure_channel(address) as channel:
    ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
    pos = pb.ChannelContext(channel_id="pos-demo", store_id="store-0001")

    account = ledger.OpenAccount(
        pb.OpenAccountRequest(idempotency_key="demo-open-0001", context=pos)
    ).member_account_id
    earned = ledger.Earn(
        pb.EarnRequest(
            idempotency_key="demo-earn-0001",
            context=pos,
            member_account_id=account,
            points=120,
            purchase=pb.Money(minor_units=1999, currency_code="EUR"),
        )
    )
    ledger.Redeem(
        pb.RedeemRequest(
            idempotency_key="demo-redeem-0001", context=pos, member_account_id=account, points=20
        )
    )
    balance = ledger.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance
    print(f"account {account}: {balance.points} points (as of entry {balance.as_of_sequence})")
    print(f"earn entry {earned.entry.sequence} hash {earned.entry.hash.hex()}")
