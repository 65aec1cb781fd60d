"""Generator of tests/vectors/journal-entry-v1.json (journal entry encoding v1).

The JSON file is GENERATED ONCE AND FROZEN: it is the reference that
audit/entry_format.py, ledger/commands.py (EntryDetails) and
docs/journal-format.md are tested against, so it must never be regenerated
to make a failing test pass. The inputs below are fixed (no randomness, no
clock), so running this script again must reproduce the file byte for byte;
``--check`` verifies exactly that without writing anything.

    .venv/bin/python tests/vectors/make_journal_vectors.py [--check]

All ids are obviously fake: channel "pos-test", stores "store-000N",
member accounts made of one repeated base32 character.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting
from ledger.commands import EntryDetails

OUT = Path(__file__).with_name("journal-entry-v1.json")

MEMBER_A = "mbr_" + "a" * 26
MEMBER_B = "mbr_" + "b" * 26
ISSUED = "program:issued"
REDEEMED = "program:redeemed"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def vector(name: str, description: str, chain: str | None, entry: JournalEntry) -> dict:
    out: dict = {
        "name": name,
        "description": description,
        "chain": chain,
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
    }
    if entry.details:
        d = EntryDetails.decode(entry.details)
        out["details_decoded"] = {
            "format": entry.details[0],
            "store_id": d.store_id,
            "external_transaction_id": d.external_transaction_id,
            "purchase_currency": d.purchase_currency,
            "purchase_minor_units": d.purchase_minor_units,
        }
    out["encoding"] = entry.encode().hex()
    out["hash"] = entry.compute_hash().hex()
    return out


def build() -> list[dict]:
    # A valid journal of three entries: earn 500, redeem 200, reverse 100 of the earn.
    earn = JournalEntry(
        sequence=1,
        time_us=T0,
        prev_hash=GENESIS_PREV_HASH,
        kind="earn",
        channel_id="pos-test",
        reverses=0,
        postings=(Posting(ISSUED, MEMBER_A, 500),),
        details=EntryDetails("store-0001", "txn-0001", 12_345, "EUR").encode(),
    )
    redeem = JournalEntry(
        sequence=2,
        time_us=T0 + 1_500_000,
        prev_hash=earn.compute_hash(),
        kind="redeem",
        channel_id="pos-test",
        reverses=0,
        postings=(Posting(MEMBER_A, REDEEMED, 200),),
        details=b"",
    )
    reverse = JournalEntry(
        sequence=3,
        time_us=T0 + 3_000_000,
        prev_hash=redeem.compute_hash(),
        kind="reverse",
        channel_id="pos-test",
        reverses=1,
        postings=(Posting(MEMBER_A, ISSUED, 100),),
        details=EntryDetails("store-0001", "txn-0001-r1").encode(),
    )
    # Standalone: its prev_hash is a fake placeholder, not the hash of a real entry.
    reverse_redeem = JournalEntry(
        sequence=7,
        time_us=T0 + 60_000_000,
        prev_hash=bytes([0x11]) * 32,
        kind="reverse",
        channel_id="pos-test",
        reverses=5,
        postings=(Posting(REDEEMED, MEMBER_B, 40),),
        details=EntryDetails(store_id="store-0002").encode(),
    )
    # Encoding only: every integer has distinct bytes so a byte-order mistake
    # shows, two postings, and a non-ASCII string whose length counts UTF-8
    # bytes. The service's validation would refuse these values.
    byte_order = JournalEntry(
        sequence=0x0102030405060708,
        time_us=0x1112131415161718,
        prev_hash=bytes(range(0x20, 0x40)),
        kind="reverse",
        channel_id="pos-test",
        reverses=0x2122232425262728,
        postings=(
            Posting(ISSUED, MEMBER_A, 0x3132333435363738),
            Posting(MEMBER_A, MEMBER_B, 0x0A),
        ),
        details=EntryDetails("store-0003", "caf\u00e9-0001", 0x4142434445464748, "EUR").encode(),
    )
    return [
        vector(
            "earn-with-purchase",
            "Earn 500 points for a purchase of 123.45 EUR (details format 0x01); "
            "first entry of the journal, prev_hash is the genesis value.",
            "chain-1",
            earn,
        ),
        vector(
            "redeem-without-details",
            "Redeem 200 points; no store, external id or purchase, so details are empty.",
            "chain-1",
            redeem,
        ),
        vector(
            "reverse-partial",
            "Reverse 100 of the 500 points earned at sequence 1: the mirrored posting "
            "(member -> program:issued); details without a purchase.",
            "chain-1",
            reverse,
        ),
        vector(
            "reverse-redeem-full",
            "Standalone (prev_hash is a placeholder): reverse all 40 points of a redeem "
            "at sequence 5 (program:redeemed -> member); details with a store id only.",
            None,
            reverse_redeem,
        ),
        vector(
            "byte-order",
            "Encoding only, not a valid journal entry: distinct bytes in every integer, "
            "two postings, and a non-ASCII external id (lengths count UTF-8 bytes).",
            None,
            byte_order,
        ),
    ]


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.name}: differs from what this script generates", file=sys.stderr)
            return 1
        print(f"{OUT.name}: up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
