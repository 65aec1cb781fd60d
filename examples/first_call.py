"""First call, as a store till would make it, with the SDK (loyalty_client):
enroll a member, find them by phone, earn, redeem, read the balance, and
check the earn's receipt against the journal's published key. Over TLS,
with a channel token; every write keeps its idempotency key across retries."""

import os

from loyalty_client import LedgerClient, credentials

creds = credentials(
    ca_file=os.environ.get("LEDGER_CA", "data/certs/ca.pem"),  # trust the dev CA only
    token=os.environ["LEDGER_TOKEN"],  # "authorization: Bearer"
)
address = os.environ.get("LEDGER_ADDRESS", "127.0.0.1:50051")
with LedgerClient(address, creds, channel_id="pos-demo", store_id="store-0001") as ledger:
    # obviously fake personal data; stored encrypted, field by field
    ledger.enroll(name="Demo Member", phone="+86 138 0000 0000", key="demo-enroll-0001")
    (account,) = ledger.find_member(phone="13800000000")
    earned = ledger.earn(account, 120, purchase_minor=1999, currency="EUR", key="demo-earn-0001")
    ledger.redeem(account, 20, key="demo-redeem-0001")
    balance = ledger.get_balance(account)
    print(f"account {account}: {balance.points} points (as of entry {balance.as_of_sequence})")
    print(f"earn entry {earned.entry.sequence} hash {earned.entry.hash.hex()}")
    if "LEDGER_JOURNAL_KEY" in os.environ:  # from: loyalty-ledger audit public-key
        receipt = ledger.receipt(earned.entry, public_key=os.environ["LEDGER_JOURNAL_KEY"])
        print(f"receipt verified: entry {receipt.sequence} in a tree of {receipt.tree_size}")
