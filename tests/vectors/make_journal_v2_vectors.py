"""Generator of tests/vectors/journal-entry-v2.json (journal entry encoding v2:
version 1 plus the 16-byte request digest; docs/journal-format.md 2.1).

GENERATED ONCE AND FROZEN, like journal-entry-v1.json: fixed inputs, no
randomness, no clock; ``--check`` verifies that running it again
reproduces the file byte for byte.

    .venv/bin/python tests/vectors/make_journal_v2_vectors.py [--check]

The request digests are fixed bytes standing for HMAC outputs (a verifier
never computes them: it only compares them). Ids are obviously fake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting
from ledger.commands import EntryDetails

OUT = Path(__file__).with_name("journal-entry-v2.json")

MEMBER_A = "mbr_" + "a" * 26
ISSUED = "program:issued"
REDEEMED = "program:redeemed"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
REQUEST_1 = bytes(range(0x40, 0x50))
REQUEST_2 = bytes(range(0x50, 0x60))


def vector(name: str, description: str, chain: str | None, entry: JournalEntry) -> dict:
    return {
        "name": name,
        "description": description,
        "chain": chain,
        "version": entry.encode()[4],
        "sequence": entry.sequence,
        "time_us": entry.time_us,
        "prev_hash": entry.prev_hash.hex(),
        "kind": entry.kind,
        "channel_id": entry.channel_id,
        "reverses": entry.reverses,
        "postings": [
            {"from_account": p.from_account, "to_account": p.to_account, "points": p.points}
            for p in entry.postings
        ],
        "details": entry.details.hex(),
        "request": entry.request.hex(),
        "encoding": entry.encode().hex(),
        "hash": entry.compute_hash().hex(),
    }


def build() -> list[dict]:
    # chain-2: an earn (v2, its request), a redeem (v2, another request),
    # then an entry the ledger makes itself (v1: no request)
    earn = JournalEntry(
        sequence=1,
        time_us=T0,
        prev_hash=GENESIS_PREV_HASH,
        kind="earn",
        channel_id="pos-test",
        reverses=0,
        postings=(Posting(ISSUED, MEMBER_A, 500),),
        details=EntryDetails("store-0001", "txn-0001", 12_345, "EUR").encode(),
        request=REQUEST_1,
    )
    redeem = JournalEntry(
        sequence=2,
        time_us=T0 + 1_500_000,
        prev_hash=earn.compute_hash(),
        kind="redeem",
        channel_id="pos-test",
        reverses=0,
        postings=(Posting(MEMBER_A, REDEEMED, 200),),
        request=REQUEST_2,
    )
    program = JournalEntry(
        sequence=3,
        time_us=T0 + 3_000_000,
        prev_hash=redeem.compute_hash(),
        kind="earn",
        channel_id="program",
        reverses=0,
        postings=(Posting("program:issued:referral", MEMBER_A, 50),),
    )
    # standalone: a second credit under the first earn's request (its
    # idempotency record deleted, the request replayed): a verifier given
    # chain-2 with this appended reports it
    replayed = JournalEntry(
        sequence=4,
        time_us=T0 + 4_000_000,
        prev_hash=program.compute_hash(),
        kind="earn",
        channel_id="pos-test",
        reverses=0,
        postings=(Posting(ISSUED, MEMBER_A, 500),),
        details=EntryDetails("store-0001", "txn-0001", 12_345, "EUR").encode(),
        request=REQUEST_1,
    )
    return [
        vector(
            "earn-with-request",
            "Earn 500 for a purchase; version 2: the request digest follows the details.",
            "chain-2",
            earn,
        ),
        vector(
            "redeem-with-request",
            "Redeem 200, no details; version 2 with another request digest.",
            "chain-2",
            redeem,
        ),
        vector(
            "program-entry-v1",
            "A referral reward the ledger posts by itself: no request, so version 1.",
            "chain-2",
            program,
        ),
        vector(
            "replayed-request",
            "Follows chain-2 and carries the request of sequence 1 again: a journal "
            "with it MUST fail the one-request-one-entry check at sequence 4.",
            None,
            replayed,
        ),
    ]


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == render() else 1)
    OUT.write_text(render(), encoding="utf-8")
