"""Generator of tests/vectors/journal-shortfall.json (``shortfall`` entries:
a redemption replayed from a store's outage queue beyond the member's
points; ``settlement`` entries: the store paid for some of them;
docs/journal-format.md 5.3 and docs/outage.md).

GENERATED ONCE AND FROZEN, like journal-entry-v1.json: fixed inputs, no
randomness, no clock; ``--check`` verifies that running it again
reproduces the file byte for byte.

    .venv/bin/python tests/vectors/make_journal_shortfall_vectors.py [--check]

Ids are obviously fake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting

OUT = Path(__file__).with_name("journal-shortfall.json")

MEMBER_A = "mbr_" + "a" * 26
ISSUED = "program:issued"
REDEEMED = "program:redeemed"
STORE_1 = "shortfall:store-0001"
STORE_2 = "shortfall:store-0002"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
REQUEST_1 = bytes(range(0x80, 0x90))
REQUEST_2 = bytes(range(0x90, 0xA0))
REQUEST_3 = bytes(range(0xA0, 0xB0))
REQUEST_4 = bytes(range(0xB0, 0xC0))
SETTLED = "program:settled"


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


def entry(seq: int, prev: bytes, kind: str, postings: tuple[Posting, ...], request: bytes):
    return JournalEntry(
        sequence=seq,
        time_us=T0 + (seq - 1) * 1_000_000,
        prev_hash=prev,
        kind=kind,
        channel_id="pos-test",
        reverses=0,
        postings=postings,
        request=request,
    )


def build() -> list[dict]:
    # chain-s: an earn of 30, then a replayed redemption of 80 the member's 30
    # do not cover (50 from store-0001), then one of 15 with nothing left
    # (all from store-0002); valid
    earn = entry(1, GENESIS_PREV_HASH, "earn", (Posting(ISSUED, MEMBER_A, 30),), REQUEST_1)
    partly = entry(
        2,
        earn.compute_hash(),
        "shortfall",
        (Posting(MEMBER_A, REDEEMED, 30), Posting(STORE_1, REDEEMED, 50)),
        REQUEST_2,
    )
    wholly = entry(
        3, partly.compute_hash(), "shortfall", (Posting(STORE_2, REDEEMED, 15),), REQUEST_3
    )
    two_stores = entry(
        3,
        partly.compute_hash(),
        "shortfall",
        (Posting(STORE_1, REDEEMED, 10), Posting(STORE_2, REDEEMED, 5)),
        REQUEST_3,
    )
    no_store = entry(
        3, partly.compute_hash(), "shortfall", (Posting(ISSUED, REDEEMED, 5),), REQUEST_3
    )
    settle = entry(
        4, wholly.compute_hash(), "settlement", (Posting(SETTLED, STORE_1, 20),), REQUEST_4
    )
    over_settle = entry(
        4, wholly.compute_hash(), "settlement", (Posting(SETTLED, STORE_2, 16),), REQUEST_4
    )
    redeem_from_store = entry(
        3, partly.compute_hash(), "redeem", (Posting(STORE_1, REDEEMED, 5),), REQUEST_3
    )
    return [
        vector("earn", "An earn of 30 points; version 2.", "chain-s", earn),
        vector(
            "shortfall-partly",
            "A replayed redemption of 80: the member's 30, and 50 from store-0001's "
            "shortfall account; version 2.",
            "chain-s",
            partly,
        ),
        vector(
            "shortfall-wholly",
            "A replayed redemption of 15 with nothing left: all from store-0002.",
            "chain-s",
            wholly,
        ),
        vector(
            "settlement",
            "store-0001 paid for 20 of the 50 it owed: program:settled -> its account.",
            "chain-s",
            settle,
        ),
        vector(
            "settlement-beyond-owed",
            "Follows the first three of chain-s: store-0002 owed 15, a settlement of 16 "
            "MUST be reported (kind at 4).",
            None,
            over_settle,
        ),
        vector(
            "shortfall-two-stores",
            "Follows the first two of chain-s: two shortfall accounts in one entry MUST be "
            "reported (kind at 3).",
            None,
            two_stores,
        ),
        vector(
            "shortfall-no-store",
            "Follows the first two of chain-s: a shortfall entry without a shortfall account "
            "MUST be reported (kind at 3).",
            None,
            no_store,
        ),
        vector(
            "redeem-from-store",
            "Follows the first two of chain-s: a redeem entry taking points from a store "
            "MUST be reported (kind at 3).",
            None,
            redeem_from_store,
        ),
    ]


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == render() else 1)
    OUT.write_text(render(), encoding="utf-8")
