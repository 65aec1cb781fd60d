"""Generator of tests/vectors/access-record-v1.json (access record encoding v1, "LLAR").

GENERATED ONCE AND FROZEN, like journal-entry-v1.json: the reference that
audit/access_format.py and docs/verification.md section 11.2 are tested
against; never regenerate it to make a failing test pass. The inputs are
fixed, so running this again reproduces the file byte for byte; ``--check``
verifies that without writing.

    .venv/bin/python tests/vectors/make_access_vectors.py [--check]

Ids are obviously fake: principals "pos-test-till-1" and "staff-fake-007",
member accounts of one repeated base32 character.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from audit.access_format import AccessRecord
from audit.entry_format import GENESIS_PREV_HASH

OUT = Path(__file__).with_name("access-record-v1.json")
MEMBER = "mbr_" + "c" * 26
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds

ROWS = [
    (
        "allow-write",
        "a channel's Earn, allowed: no purpose, no personal fields",
        dict(
            request_id="0000000000000001",
            principal="pos-test-till-1",
            role="channel",
            method="/loyalty.ledger.v1.LedgerService/Earn",
            decision="allow",
            reason="",
            purpose="",
            member_account_id=MEMBER,
            fields="",
        ),
    ),
    (
        "allow-read-fields",
        "a support read of a profile: purpose and the names of the fields returned",
        dict(
            request_id="0000000000000002",
            principal="staff-fake-007",
            role="support",
            method="/loyalty.members.v1.MemberService/GetMember",
            decision="allow",
            reason="",
            purpose="customer-support",
            member_account_id=MEMBER,
            fields="email,phone",
        ),
    ),
    (
        "deny",
        "a denied call: the failed check is the reason",
        dict(
            request_id="0000000000000003",
            principal="staff-fake-007",
            role="support",
            method="/loyalty.audit.v1.AuditService/GetAccessReport",
            decision="deny",
            reason="permission: role support may not call this method",
            purpose="",
            member_account_id="",
            fields="",
        ),
    ),
    (
        "break-glass-start",
        "a break-glass grant event: method 'break-glass', non-ASCII text (UTF-8 lengths)",
        dict(
            request_id="0000000000000004",
            principal="staff-fake-007",
            role="support",
            method="break-glass",
            decision="start",
            reason="grant bg-0001: 紧急 incident INC-0042",
            purpose="fraud-investigation",
            member_account_id=MEMBER,
            fields="",
        ),
    ),
]


def build() -> list[dict]:
    out, prev = [], GENESIS_PREV_HASH
    for i, (name, description, texts) in enumerate(ROWS, start=1):
        record = AccessRecord(i, T0 + i * 1_000_000, prev, **texts)
        digest = record.compute_hash()
        out.append(
            {
                "name": name,
                "description": description,
                "sequence": record.sequence,
                "time_us": record.time_us,
                "prev_hash": prev.hex(),
                **texts,
                "encoding": record.encode().hex(),
                "hash": digest.hex(),
            }
        )
        prev = digest
    return out


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        same = OUT.read_text(encoding="utf-8") == text
        print("access-record-v1.json reproduces" if same else "access-record-v1.json DIFFERS")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
