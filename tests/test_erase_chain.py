"""The verifier's rules for erase entries: the whole balance goes to
program:forfeited, and the erased member's account is closed for good.
Chains are built correctly hashed, so only the erase rules can catch them."""

from __future__ import annotations

from audit.chain import StoredEntry, check_chain
from audit.entry_format import (
    GENESIS_PREV_HASH,
    KIND_EARN,
    KIND_ERASE,
    PROGRAM_FORFEITED,
    PROGRAM_ISSUED,
    JournalEntry,
    Posting,
)

MEMBER = "mbr_" + "a" * 26


def chain(*specs: tuple[str, Posting]) -> list[StoredEntry]:
    out: list[StoredEntry] = []
    prev = GENESIS_PREV_HASH
    for seq, (kind, posting) in enumerate(specs, start=1):
        entry = JournalEntry(seq, 1_000 + seq, prev, kind, "ops", 0, (posting,))
        prev = entry.compute_hash()
        out.append(StoredEntry(entry, prev))
    return out


def checks(entries: list[StoredEntry]) -> list[tuple[int | None, str]]:
    return [(p.sequence, p.check) for p in check_chain(entries).problems]


def test_erase_of_the_whole_balance_verifies() -> None:
    entries = chain(
        (KIND_EARN, Posting(PROGRAM_ISSUED, MEMBER, 70)),
        (KIND_ERASE, Posting(MEMBER, PROGRAM_FORFEITED, 70)),
    )
    assert checks(entries) == []


def test_erase_leaving_points_behind() -> None:
    entries = chain(
        (KIND_EARN, Posting(PROGRAM_ISSUED, MEMBER, 70)),
        (KIND_ERASE, Posting(MEMBER, PROGRAM_FORFEITED, 50)),
    )
    assert checks(entries) == [(2, "kind")]


def test_erase_into_the_wrong_account() -> None:
    entries = chain(
        (KIND_EARN, Posting(PROGRAM_ISSUED, MEMBER, 70)),
        (KIND_ERASE, Posting(MEMBER, PROGRAM_ISSUED, 70)),
    )
    assert checks(entries) == [(2, "kind")]


def test_entry_after_erasure_touches_a_closed_account() -> None:
    entries = chain(
        (KIND_EARN, Posting(PROGRAM_ISSUED, MEMBER, 70)),
        (KIND_ERASE, Posting(MEMBER, PROGRAM_FORFEITED, 70)),
        (KIND_EARN, Posting(PROGRAM_ISSUED, MEMBER, 5)),
    )
    assert checks(entries) == [(3, "closed")]
