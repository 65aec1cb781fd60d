"""Applies a batch of commands to an in-memory view of the ledger.

Pure: the appender loads what the batch needs (chain head, balances of the
accounts involved, the entries being reversed, idempotency records), lets
the planner decide every command in order, then writes what the planner
produced in the same transaction. A command that fails raises before it
changes anything, so it leaves no trace; the others in the batch go on.

Invariants the planner keeps on every append (audit/chain.py checks the same
ones offline):
- sequence = previous sequence + 1 and prev_hash = previous entry's hash;
- time never goes backwards along the chain;
- every posting moves a positive amount between two different accounts, so
  the sum over all accounts stays zero;
- no member account goes below zero;
- an entry is reversed at most up to its own amount, and reversals are not
  themselves reversible;
- one (channel, idempotency key) maps to one request fingerprint forever;
- an erased member's account is closed: its whole balance is forfeited in
  the erase entry, and no later entry touches it.

The batch (its state, the dispatcher, how entries are written) is in
batch.py; each family of commands is a module of functions over it:
members.py (enroll, erase), profiles.py, due.py (what time makes due),
earning.py (earn, tiers), referrals.py, spending.py (redeem, transfer),
holds.py, exchange.py, reversals.py, shortfalls.py, vouchers.py.
"""

from ledger.planner.batch import BatchPlanner, spender_of
from ledger.planner.records import (
    DetailsSealer,
    Head,
    IdemKey,
    IdempotencyRecord,
    Original,
    SameDetails,
    clear_details,
    same_clear_details,
)

__all__ = [
    "BatchPlanner",
    "DetailsSealer",
    "Head",
    "IdemKey",
    "IdempotencyRecord",
    "Original",
    "SameDetails",
    "clear_details",
    "same_clear_details",
    "spender_of",
]
