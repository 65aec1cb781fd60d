"""First call, as a store till would make it: enroll a member, find them by
phone, earn, redeem, read the balance. Over TLS, with a channel token."""

import os
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

address = os.environ.get("LEDGER_ADDRESS", "127.0.0.1:50051")
ca = Path(os.environ.get("LEDGER_CA", "data/certs/ca.pem")).read_bytes()
credentials = grpc.composite_channel_credentials(
    grpc.ssl_channel_credentials(root_certificates=ca),  # trust the dev CA only
    grpc.access_token_call_credentials(os.environ["LEDGER_TOKEN"]),  # "authorization: Bearer"
)
with grpc.secure_channel(address, credentials) as channel:
    members = members_pb2_grpc.MemberServiceStub(channel)
    ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
    pos = pb.ChannelContext(channel_id="pos-demo", store_id="store-0001")

    members.Enroll(  # obviously fake personal data; stored encrypted, field by field
        mpb.EnrollRequest(
            idempotency_key="demo-enroll-0001",
            context=pos,
            profile=mpb.Profile(name="Demo Member", phone="+86 138 0000 0000"),
        )
    )
    (account,) = members.FindMember(mpb.FindMemberRequest(phone="13800000000")).member_account_ids
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
