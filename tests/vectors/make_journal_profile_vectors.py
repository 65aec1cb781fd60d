"""Generator of tests/vectors/journal-profile.json (``profile`` entries:
no postings, details format 0x03 committing to a member's field
ciphertexts; docs/journal-format.md 6.5).

GENERATED ONCE AND FROZEN, like journal-entry-v1.json: fixed inputs, no
randomness, no clock; ``--check`` verifies that running it again
reproduces the file byte for byte.

    .venv/bin/python tests/vectors/make_journal_profile_vectors.py [--check]

The "ciphertexts" are fixed stand-in bytes (a verifier never sees the real
ones: it only checks the format and, with the database, compares digests).
Ids are obviously fake.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting

OUT = Path(__file__).with_name("journal-profile.json")

MEMBER_A = "mbr_" + "a" * 26
ISSUED = "program:issued"
FORFEITED = "program:forfeited"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
REQUEST_1 = bytes(range(0x60, 0x70))
REQUEST_2 = bytes(range(0x70, 0x80))


def blob(label: str) -> bytes:
    """A stand-in ciphertext blob (fixed bytes)."""
    return b"\x01" + label.encode("ascii") * 4


def commitment(account: str, fields: list[tuple[str, bytes]]) -> bytes:
    """Details 0x03 built by hand from the table in 6.5 (not by the module
    under test), fields given in the order to encode."""
    out = b"\x03" + struct.pack(">H", len(account)) + account.encode()
    out += struct.pack(">H", len(fields))
    for name, ciphertext in fields:
        out += struct.pack(">H", len(name)) + name.encode() + hashlib.sha256(ciphertext).digest()
    return out


def decoded(details: bytes) -> dict | None:
    if not details or details[0] != 0x03:
        return None
    pos = 1
    (n,) = struct.unpack_from(">H", details, pos)
    account = details[pos + 2 : pos + 2 + n].decode()
    pos += 2 + n
    (count,) = struct.unpack_from(">H", details, pos)
    pos += 2
    fields = []
    for _ in range(count):
        (n,) = struct.unpack_from(">H", details, pos)
        name = details[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
        fields.append({"field": name, "digest": details[pos : pos + 32].hex()})
        pos += 32
    return {"format": 3, "account": account, "fields": fields}


def vector(name: str, description: str, chain: str | None, entry: JournalEntry) -> dict:
    out = {
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
    if entry.kind == "profile":
        out["details_decoded"] = decoded(entry.details)
    return out


def build() -> list[dict]:
    # chain-p: an enrollment (its profile entry carries the request), an
    # earn, an update (channel members, version 1), then an erase; valid
    enroll = JournalEntry(
        sequence=1,
        time_us=T0,
        prev_hash=GENESIS_PREV_HASH,
        kind="profile",
        channel_id="app-test",
        reverses=0,
        postings=(),
        details=commitment(
            MEMBER_A, [("email", blob("e1")), ("name", blob("n1")), ("phone", blob("p1"))]
        ),
        request=REQUEST_1,
    )
    earn = JournalEntry(
        sequence=2,
        time_us=T0 + 1_000_000,
        prev_hash=enroll.compute_hash(),
        kind="earn",
        channel_id="pos-test",
        reverses=0,
        postings=(Posting(ISSUED, MEMBER_A, 300),),
        request=REQUEST_2,
    )
    update = JournalEntry(
        sequence=3,
        time_us=T0 + 2_000_000,
        prev_hash=earn.compute_hash(),
        kind="profile",
        channel_id="members",
        reverses=0,
        postings=(),
        details=commitment(MEMBER_A, [("email", blob("e1")), ("phone", blob("p2"))]),
    )
    erase = JournalEntry(
        sequence=4,
        time_us=T0 + 3_000_000,
        prev_hash=update.compute_hash(),
        kind="erase",
        channel_id="members",
        reverses=0,
        postings=(Posting(MEMBER_A, FORFEITED, 300),),
    )
    after_erase = JournalEntry(
        sequence=5,
        time_us=T0 + 4_000_000,
        prev_hash=erase.compute_hash(),
        kind="profile",
        channel_id="members",
        reverses=0,
        postings=(),
        details=commitment(MEMBER_A, [("name", blob("n3"))]),
    )
    with_posting = JournalEntry(
        sequence=4,
        time_us=T0 + 3_000_000,
        prev_hash=update.compute_hash(),
        kind="profile",
        channel_id="members",
        reverses=0,
        postings=(Posting(ISSUED, MEMBER_A, 1),),
        details=commitment(MEMBER_A, [("name", blob("n3"))]),
    )
    out_of_order = JournalEntry(
        sequence=4,
        time_us=T0 + 3_000_000,
        prev_hash=update.compute_hash(),
        kind="profile",
        channel_id="members",
        reverses=0,
        postings=(),
        details=commitment(MEMBER_A, [("phone", blob("p3")), ("email", blob("e3"))]),
    )
    return [
        vector(
            "profile-enroll",
            "An enrollment's commitment to three fields; version 2 (the Enroll request).",
            "chain-p",
            enroll,
        ),
        vector("earn-between", "An earn of the member, version 2.", "chain-p", earn),
        vector(
            "profile-update",
            "UpdateMember replaced phone and cleared name: two fields; version 1.",
            "chain-p",
            update,
        ),
        vector("erase", "The member erased; the family is closed.", "chain-p", erase),
        vector(
            "profile-after-erase",
            "Follows chain-p: a commitment to an erased member MUST be reported (closed at 5).",
            None,
            after_erase,
        ),
        vector(
            "profile-with-posting",
            "Follows the first three of chain-p: a profile entry with a posting MUST be "
            "reported (kind at 4).",
            None,
            with_posting,
        ),
        vector(
            "profile-fields-out-of-order",
            "Follows the first three of chain-p: field names not ascending MUST be "
            "reported (kind at 4).",
            None,
            out_of_order,
        ),
    ]


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == render() else 1)
    OUT.write_text(render(), encoding="utf-8")
