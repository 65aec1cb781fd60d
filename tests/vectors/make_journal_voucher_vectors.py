"""Generator of tests/vectors/journal-voucher.json (``voucher_issue``,
``voucher_redeem``, ``voucher_expire`` and ``voucher_cancel`` entries: a
member's points for a reward's voucher, and how the voucher ends, once;
docs/journal-format.md 5.3 and docs/program-rules.md 11).

GENERATED ONCE AND FROZEN, like journal-entry-v1.json: fixed inputs, no
randomness, no clock; ``--check`` verifies that running it again
reproduces the file byte for byte.

    .venv/bin/python tests/vectors/make_journal_voucher_vectors.py [--check]

Ids are obviously fake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting

OUT = Path(__file__).with_name("journal-voucher.json")

MEMBER_A = "mbr_" + "a" * 26
LOT_1 = MEMBER_A + "/lot/1"
LOT_2 = MEMBER_A + "/lot/2"
ISSUED = "program:issued"
REDEEMED = "program:redeemed"
EXPIRED = "program:expired"
COFFEE = "voucher:free-coffee"
TOTE = "voucher:tote-bag"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


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


def entry(
    seq: int,
    prev: bytes,
    kind: str,
    postings: tuple[Posting, ...],
    *,
    reverses: int = 0,
    channel: str = "app",
) -> JournalEntry:
    return JournalEntry(
        sequence=seq,
        time_us=T0 + (seq - 1) * 1_000_000,
        prev_hash=prev,
        kind=kind,
        channel_id=channel,
        reverses=reverses,
        postings=postings,
        # the command's own entries name their request; the program's do not
        request=bytes([0x40 + seq]) * 16 if channel != "program" else b"",
    )


def build() -> list[dict]:
    # chain-v: two earns (lots 1 and 2); a coffee voucher paid from both
    # lots, redeemed at a till; a second coffee voucher that expires; a tote
    # bag voucher cancelled, its points back to the lot they came from
    earn_1 = entry(1, GENESIS_PREV_HASH, "earn", (Posting(ISSUED, LOT_1, 200),))
    earn_2 = entry(2, earn_1.compute_hash(), "earn", (Posting(ISSUED, LOT_2, 500),))
    issue = entry(
        3,
        earn_2.compute_hash(),
        "voucher_issue",
        (Posting(LOT_1, COFFEE, 200), Posting(LOT_2, COFFEE, 100)),
    )
    redeem = entry(
        4,
        issue.compute_hash(),
        "voucher_redeem",
        (Posting(COFFEE, REDEEMED, 300),),
        reverses=3,
        channel="pos-test",
    )
    issue_2 = entry(5, redeem.compute_hash(), "voucher_issue", (Posting(LOT_2, COFFEE, 300),))
    expire = entry(
        6,
        issue_2.compute_hash(),
        "voucher_expire",
        (Posting(COFFEE, EXPIRED, 300),),
        reverses=5,
        channel="program",
    )
    issue_3 = entry(7, expire.compute_hash(), "voucher_issue", (Posting(LOT_2, TOTE, 50),))
    cancel = entry(
        8, issue_3.compute_hash(), "voucher_cancel", (Posting(TOTE, LOT_2, 50),), reverses=7
    )
    # hostile entries, each following a prefix of chain-v
    redeem_again = entry(
        5,
        redeem.compute_hash(),
        "voucher_redeem",
        (Posting(COFFEE, REDEEMED, 300),),
        reverses=3,
        channel="pos-test",
    )
    redeem_part = entry(
        4,
        issue.compute_hash(),
        "voucher_redeem",
        (Posting(COFFEE, REDEEMED, 200),),
        reverses=3,
        channel="pos-test",
    )
    cancel_elsewhere = entry(
        4, issue.compute_hash(), "voucher_cancel", (Posting(COFFEE, LOT_2, 300),), reverses=3
    )
    issue_from_two_rewards = entry(
        3,
        earn_2.compute_hash(),
        "voucher_issue",
        (Posting(LOT_1, COFFEE, 100), Posting(LOT_2, TOTE, 50)),
    )
    return [
        vector("earn-1", "An earn of 200 into lot 1; version 2.", "chain-v", earn_1),
        vector("earn-2", "An earn of 500 into lot 2.", "chain-v", earn_2),
        vector(
            "voucher-issue",
            "A free coffee for 300 points: 200 from lot 1, 100 from lot 2, into "
            "voucher:free-coffee. Its sequence (3) names the voucher.",
            "chain-v",
            issue,
        ),
        vector(
            "voucher-redeem",
            "A till honours voucher 3 (reverses = 3): all 300 to program:redeemed.",
            "chain-v",
            redeem,
        ),
        vector("voucher-issue-2", "A second coffee, 300 from lot 2.", "chain-v", issue_2),
        vector(
            "voucher-expire",
            "Voucher 5 expires unused (channel program, no request): 300 to program:expired.",
            "chain-v",
            expire,
        ),
        vector("voucher-issue-3", "A tote bag for 50 from lot 2.", "chain-v", issue_3),
        vector(
            "voucher-cancel",
            "Voucher 7 cancelled: its 50 back to lot 2, where they came from.",
            "chain-v",
            cancel,
        ),
        vector(
            "voucher-redeem-twice",
            "Follows the first four of chain-v: a second redemption of voucher 3 MUST be "
            "reported (reversal at 5).",
            None,
            redeem_again,
        ),
        vector(
            "voucher-redeem-part",
            "Follows the first three of chain-v: a redemption of 200 of voucher 3's 300 "
            "MUST be reported (reversal at 4).",
            None,
            redeem_part,
        ),
        vector(
            "voucher-cancel-elsewhere",
            "Follows the first three of chain-v: a cancel giving all 300 to lot 2 (200 came "
            "from lot 1) MUST be reported (reversal at 4).",
            None,
            cancel_elsewhere,
        ),
        vector(
            "voucher-issue-two-rewards",
            "Follows the first two of chain-v: one issue into two vouchers' accounts MUST be "
            "reported (kind at 3).",
            None,
            issue_from_two_rewards,
        ),
    ]


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == render() else 1)
    OUT.write_text(render(), encoding="utf-8")
