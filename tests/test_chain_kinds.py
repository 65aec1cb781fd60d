"""The verifier's rules for member sub-accounts (lots, pending, held) and the
kinds of docs/journal-format.md §5.3.

Every journal here is hand-written, correctly hashed and linked, and
verified with a recorded head and balances that agree with it (what a
forger with the code would write), so only the named rule can catch a
hostile entry. No database, no network; the member ids are fake.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from audit.accounts import (
    FORM_HELD,
    FORM_LEGACY,
    FORM_LOT,
    FORM_PENDING,
    PROGRAM_EXPIRED,
    MemberAccount,
    available_form,
    held_account,
    is_issued_account,
    is_partner_account,
    lot_account,
    lot_of,
    owner_of,
    parse_member_account,
    pending_account,
)
from audit.chain import Head, StoredEntry, check_chain
from audit.entry_format import (
    GENESIS_PREV_HASH,
    PROGRAM_FORFEITED,
    PROGRAM_ISSUED,
    PROGRAM_REDEEMED,
    JournalEntry,
    Posting,
)

A = "mbr_" + "a" * 26
B = "mbr_" + "b" * 26
C = "mbr_" + "c" * 26
ISSUED = PROGRAM_ISSUED
BONUS = "program:issued:bonus"
REDEEMED = PROGRAM_REDEEMED
EXPIRED = PROGRAM_EXPIRED
FORFEITED = PROGRAM_FORFEITED
AIR = "partner:air"
HOTEL = "partner:hotel"
STORE = "shortfall:store-test-1"
STORE2 = "shortfall:store-test-2"
SETTLED = "program:settled"
COFFEE = "voucher:free-coffee"
TOTE = "voucher:tote"

Spec = tuple[str, tuple[tuple[str, str, int], ...], int]


def E(kind: str, *postings: tuple[str, str, int], reverses: int = 0) -> Spec:
    return (kind, postings, reverses)


def seal(entry: JournalEntry) -> StoredEntry:
    return StoredEntry(entry, entry.compute_hash())


def extend(entries: list[StoredEntry], *specs: Spec) -> list[StoredEntry]:
    out = list(entries)
    for kind, postings, reverses in specs:
        prev = out[-1] if out else None
        entry = JournalEntry(
            sequence=prev.entry.sequence + 1 if prev else 1,
            time_us=1_000 + len(out),
            prev_hash=prev.stored_hash if prev else GENESIS_PREV_HASH,
            kind=kind,
            channel_id="pos-test",
            reverses=reverses,
            postings=tuple(Posting(*p) for p in postings),
        )
        out.append(seal(entry))
    return out


def journal(*specs: Spec) -> list[StoredEntry]:
    return extend([], *specs)


def replay(entries: list[StoredEntry]) -> dict[str, int]:
    balances: defaultdict[str, int] = defaultdict(int)
    for stored in entries:
        for p in stored.entry.postings:
            balances[p.from_account] -= p.points
            balances[p.to_account] += p.points
    return dict(balances)


def problems(entries: list[StoredEntry]) -> list[tuple[int | None, str]]:
    """Problems with a head and balances that agree with ``entries``."""
    last = entries[-1]
    result = check_chain(
        entries,
        head=Head(last.entry.sequence, last.stored_hash),
        balances=replay(entries),
    )
    return [(p.sequence, p.check) for p in result.problems]


def erase_all(entries: list[StoredEntry], owner: str) -> Spec:
    """An erase of every non-zero account of ``owner``'s family."""
    return E(
        "erase",
        *(
            (account, FORFEITED, points)
            for account, points in sorted(replay(entries).items())
            if owner_of(account) == owner and points
        ),
    )


# -- audit.accounts -----------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "parsed"),
    [
        (A, MemberAccount(A, FORM_LEGACY, 0)),
        (f"{A}/lot/1", MemberAccount(A, FORM_LOT, 1)),
        (f"{A}/pending/12", MemberAccount(A, FORM_PENDING, 12)),
        (f"{A}/held/0", MemberAccount(A, FORM_HELD, 0)),
        (f"{A}/held/9223372036854775807", MemberAccount(A, FORM_HELD, 2**63 - 1)),
        (ISSUED, None),
        (AIR, None),
        (f"{A}/lot/01", None),  # leading zero
        (f"{A}/lot/0", None),  # lot 0 is the bare mbr_X
        (f"{A}/pending/0", None),
        (f"{A}/held/00", None),
        (f"{A}/held/-1", None),
        (f"{A}/held/+1", None),
        (f"{A}/lot/1 ", None),
        (f"{A}/lot/\u0661", None),  # ARABIC-INDIC DIGIT ONE: a digit, not ASCII
        (f"{A}/lot/9223372036854775808", None),  # beyond any sequence
        (f"{A}/lot/{'9' * 5000}", None),  # no int() of a huge string
        (f"{A}/foo/1", None),
        (f"{A}/lot", None),
        (f"{A}/lot/", None),
        (f"{A}/", None),
        (f"{A}/lot/1/2", None),
        (f"{A}//lot/1", None),
    ],
)
def test_parse_member_account(account: str, parsed: MemberAccount | None) -> None:
    assert parse_member_account(account) == parsed


def test_account_helpers() -> None:
    assert owner_of(f"{A}/held/3") == A
    assert owner_of(f"{A}/foo/bar") == A  # owner is syntactic: before the first "/"
    assert owner_of(A) == A
    assert owner_of(ISSUED) == ISSUED
    assert owner_of("partner:a/b") == "partner:a/b"
    for account, available in [
        (A, A),
        (f"{A}/held/0", A),
        (f"{A}/held/7", f"{A}/lot/7"),
        (f"{A}/pending/7", f"{A}/lot/7"),
        (f"{A}/lot/7", f"{A}/lot/7"),
        (REDEEMED, REDEEMED),
    ]:
        assert available_form(account) == available
    held_7 = parse_member_account(f"{A}/held/7")
    assert held_7 is not None and held_7.available == f"{A}/lot/7"
    assert (lot_of(A), lot_of(f"{A}/pending/5"), lot_of(f"{A}/held/0")) == (0, 5, 0)
    assert (lot_account(A, 0), lot_account(A, 5)) == (A, f"{A}/lot/5")
    assert pending_account(A, 5) == f"{A}/pending/5"
    assert (held_account(A, 0), held_account(A, 5)) == (f"{A}/held/0", f"{A}/held/5")
    for bad in (
        lambda: available_form(f"{A}/lot/01"),
        lambda: lot_of(ISSUED),
        lambda: lot_of(f"{A}/foo/1"),
        lambda: lot_account(A, -1),
        lambda: pending_account(A, 0),
        lambda: held_account(A, -1),
        lambda: held_account(f"{A}/lot/1", 1),
        lambda: lot_account(ISSUED, 1),
    ):
        with pytest.raises(ValueError):
            bad()
    assert is_issued_account(ISSUED) and is_issued_account(BONUS)
    assert not any(
        map(is_issued_account, ["program:issued:", "program:issued:Bonus", "program:issuedx"])
    )
    assert is_partner_account(AIR) and is_partner_account("partner:" + "x" * 40)
    assert not any(map(is_partner_account, ["partner:", "partner:" + "x" * 41, "partner:a/b"]))


# -- one valid journal with every kind ----------------------------------------


def every_kind() -> list[StoredEntry]:
    entries = journal(
        E("earn", (ISSUED, A, 100)),  # 1: legacy, lot 0
        E("earn", (ISSUED, f"{A}/pending/2", 50), (BONUS, f"{A}/pending/2", 10)),  # 2
        E("mature", (f"{A}/pending/2", f"{A}/lot/2", 60)),  # 3
        E("earn", (ISSUED, f"{A}/lot/4", 40)),  # 4
        E("redeem", (A, REDEEMED, 30), (f"{A}/lot/2", REDEEMED, 20)),  # 5
        E("hold", (A, f"{A}/held/0", 20), (f"{A}/lot/4", f"{A}/held/4", 10)),  # 6
        E(  # 7
            "capture",
            (f"{A}/held/0", REDEEMED, 15),
            (f"{A}/held/0", A, 5),
            (f"{A}/held/4", REDEEMED, 10),
            reverses=6,
        ),
        E("hold", (f"{A}/lot/2", f"{A}/held/2", 5)),  # 8
        E("release", (f"{A}/held/2", f"{A}/lot/2", 5), reverses=8),  # 9
        E("reverse", (REDEEMED, f"{A}/lot/4", 10), (REDEEMED, A, 5), reverses=7),  # 10
        E("reverse", (REDEEMED, f"{A}/lot/2", 20), reverses=5),  # 11
        E("reverse", (f"{A}/lot/2", BONUS, 10), (A, ISSUED, 5), reverses=2),  # 12
        E("expire", (f"{A}/lot/4", EXPIRED, 40)),  # 13
        E("transfer", (A, f"{B}/lot/14", 10), (f"{A}/lot/2", f"{B}/lot/14", 5)),  # 14
        E("exchange_out", (f"{A}/lot/2", AIR, 10)),  # 15
        E("exchange_in", (AIR, f"{B}/pending/16", 25)),  # 16
        E("exchange_in", (HOTEL, f"{B}/lot/17", 5)),  # 17
        E("hold", (A, f"{A}/held/0", 7)),  # 18: still open when A is erased
        E("earn", (ISSUED, f"{A}/pending/19", 3)),  # 19
    )
    entries = extend(entries, erase_all(entries, A))  # 20
    return extend(
        entries,
        E("redeem", (f"{B}/lot/14", REDEEMED, 15), (f"{B}/lot/17", REDEEMED, 5)),  # 21
        E("reverse", (REDEEMED, f"{B}/lot/17", 5), reverses=21),  # 22
        E("earn", (ISSUED, B, 1)),  # 23
        E("shortfall", (B, REDEEMED, 1), (STORE, REDEEMED, 4)),  # 24: an outage redemption
        E("settlement", (SETTLED, STORE, 3)),  # 25: the store paid for 3 of its 4
        E("earn", (ISSUED, f"{B}/lot/26", 50)),  # 26
        E("voucher_issue", (f"{B}/lot/17", COFFEE, 1), (f"{B}/lot/26", COFFEE, 9)),  # 27
        E("voucher_redeem", (COFFEE, REDEEMED, 10), reverses=27),  # 28
        E("voucher_issue", (f"{B}/lot/26", COFFEE, 10)),  # 29
        E("voucher_expire", (COFFEE, EXPIRED, 10), reverses=29),  # 30
        E("voucher_issue", (f"{B}/lot/26", TOTE, 4), (f"{B}/lot/17", TOTE, 1)),  # 31
        E("voucher_cancel", (TOTE, f"{B}/lot/26", 4), (TOTE, f"{B}/lot/17", 1), reverses=31),
    )


def test_every_kind_verifies() -> None:
    entries = every_kind()
    assert [s.entry.kind for s in entries][19] == "erase"
    assert len(entries[19].entry.postings) > 1  # the erase covers several accounts
    balances = replay(entries)
    assert all(v == 0 for a, v in balances.items() if owner_of(a) == A)
    assert sum(balances.values()) == 0
    assert problems(entries) == []


def test_legacy_one_posting_journal_verifies() -> None:
    entries = journal(
        E("earn", (ISSUED, A, 500)),
        E("redeem", (A, REDEEMED, 200)),
        E("reverse", (REDEEMED, A, 50), reverses=2),
        E("reverse", (A, ISSUED, 100), reverses=1),
        E("earn", (ISSUED, B, 5)),
        E("erase", (A, FORFEITED, 250)),
    )
    assert problems(entries) == []


# -- hostile entries ----------------------------------------------------------

# seq 1..7; the hostile entry comes next (seq 8)
BASE = journal(
    E("earn", (ISSUED, A, 100)),  # 1
    E("earn", (ISSUED, f"{A}/lot/2", 50), (BONUS, f"{A}/lot/2", 20)),  # 2
    E("earn", (ISSUED, f"{A}/pending/3", 30)),  # 3
    E("hold", (A, f"{A}/held/0", 40), (f"{A}/lot/2", f"{A}/held/2", 10)),  # 4
    E("redeem", (A, REDEEMED, 20), (f"{A}/lot/2", REDEEMED, 10)),  # 5
    E("earn", (ISSUED, B, 10)),  # 6
    E("hold", (A, f"{A}/held/0", 20)),  # 7: a second hold on held/0
)
CAPTURE_4 = E(
    "capture", (f"{A}/held/0", REDEEMED, 40), (f"{A}/held/2", f"{A}/lot/2", 10), reverses=4
)
CAPTURE_7 = E("capture", (f"{A}/held/0", REDEEMED, 20), reverses=7)
VOUCHER_8 = E("voucher_issue", (A, COFFEE, 10), (f"{A}/lot/2", COFFEE, 5))


def test_base_verifies() -> None:
    assert problems(BASE) == []
    assert problems(extend(BASE, CAPTURE_4)) == []


HOSTILE: dict[str, tuple[list[Spec], str]] = {
    # name: (entries after BASE, check expected at the last one)
    # -- capture / release
    # (held/0 has 40 + 20 from holds 4 and 7, so a second resolution of hold 7
    # does not overdraw it: only the resolve-once rule is left to catch it)
    "capture_twice": ([CAPTURE_7, CAPTURE_7], "reversal"),
    "release_after_capture": (
        [CAPTURE_7, E("release", (f"{A}/held/0", A, 20), reverses=7)],
        "reversal",
    ),
    "release_twice": (
        [E("release", (f"{A}/held/0", A, 20), reverses=7)] * 2,
        "reversal",
    ),
    "capture_more_than_held": (
        # held/0 has 60 (holds 4 and 7): no overdraft, only hold 4's 40 is wrong
        [
            E(
                "capture",
                (f"{A}/held/0", REDEEMED, 45),
                (f"{A}/held/2", f"{A}/lot/2", 10),
                reverses=4,
            )
        ],
        "reversal",
    ),
    "capture_less_than_held": (
        [
            E(
                "capture",
                (f"{A}/held/0", REDEEMED, 35),
                (f"{A}/held/2", f"{A}/lot/2", 10),
                reverses=4,
            )
        ],
        "reversal",
    ),
    "capture_leaves_a_held_account": (
        [E("capture", (f"{A}/held/0", REDEEMED, 40), reverses=4)],
        "reversal",
    ),
    "capture_of_a_redeem": ([E("capture", (f"{A}/held/0", REDEEMED, 20), reverses=5)], "reversal"),
    "capture_of_nothing": ([E("capture", (f"{A}/held/0", REDEEMED, 20))], "reversal"),
    "capture_of_a_later_hold": (
        [E("capture", (f"{A}/held/0", REDEEMED, 20), reverses=9)],
        "reversal",
    ),
    "capture_to_another_member": (
        [E("capture", (f"{A}/held/0", B, 20), reverses=7)],
        "kind",
    ),
    "capture_back_into_another_lot": (
        [E("capture", (f"{A}/held/0", f"{A}/lot/2", 20), reverses=7)],
        "kind",
    ),
    "capture_from_an_available_lot": (
        [E("capture", (f"{A}/held/0", REDEEMED, 20), (A, REDEEMED, 5), reverses=7)],
        "kind",
    ),
    "release_to_redeemed": (
        [E("release", (f"{A}/held/0", REDEEMED, 20), reverses=7)],
        "kind",
    ),
    # -- earn
    "earn_into_another_lot_number": ([E("earn", (ISSUED, f"{A}/lot/3", 5))], "kind"),
    "earn_pending_with_wrong_number": ([E("earn", (ISSUED, f"{A}/pending/9", 5))], "kind"),
    "earn_into_held": ([E("earn", (ISSUED, f"{A}/held/8", 5))], "kind"),
    "earn_two_targets": (
        [E("earn", (ISSUED, f"{A}/lot/8", 5), (BONUS, f"{B}/lot/8", 5))],
        "kind",
    ),
    "earn_same_rule_twice": (
        [E("earn", (BONUS, f"{A}/lot/8", 5), (BONUS, f"{A}/lot/8", 5))],
        "kind",
    ),
    "earn_from_a_bad_rule": ([E("earn", ("program:issued:Big Bonus", A, 5))], "kind"),
    "earn_from_redeemed": ([E("earn", (REDEEMED, A, 5))], "kind"),
    "earn_with_reverses": ([E("earn", (ISSUED, A, 5), reverses=1)], "kind"),
    # -- redeem
    "redeem_from_pending": ([E("redeem", (f"{A}/pending/3", REDEEMED, 5))], "kind"),
    "redeem_from_held": ([E("redeem", (f"{A}/held/0", REDEEMED, 5))], "kind"),
    "redeem_from_two_owners": ([E("redeem", (A, REDEEMED, 5), (B, REDEEMED, 5))], "kind"),
    "redeem_to_expired": ([E("redeem", (A, EXPIRED, 5))], "kind"),
    # -- hold
    "hold_crossing_lots": ([E("hold", (f"{A}/lot/2", f"{A}/held/3", 5))], "kind"),
    "hold_lot_0_into_held_2": ([E("hold", (A, f"{A}/held/2", 5))], "kind"),
    "hold_into_another_member": ([E("hold", (A, f"{B}/held/0", 5))], "kind"),
    "hold_from_pending": ([E("hold", (f"{A}/pending/3", f"{A}/held/3", 5))], "kind"),
    "hold_of_two_owners": (
        [E("hold", (A, f"{A}/held/0", 5), (B, f"{B}/held/0", 5))],
        "kind",
    ),
    "hold_with_reverses": ([E("hold", (A, f"{A}/held/0", 5), reverses=4)], "kind"),
    # -- mature / expire
    "mature_into_another_lot": ([E("mature", (f"{A}/pending/3", f"{A}/lot/2", 5))], "kind"),
    "mature_into_another_member": ([E("mature", (f"{A}/pending/3", f"{B}/lot/3", 5))], "kind"),
    "mature_from_a_lot": ([E("mature", (f"{A}/lot/2", f"{A}/lot/3", 5))], "kind"),
    "expire_from_legacy": ([E("expire", (A, EXPIRED, 5))], "kind"),
    "expire_from_pending": ([E("expire", (f"{A}/pending/3", EXPIRED, 5))], "kind"),
    "expire_to_forfeited": ([E("expire", (f"{A}/lot/2", FORFEITED, 5))], "kind"),
    # -- transfer
    "transfer_to_self": ([E("transfer", (A, f"{A}/lot/8", 5))], "kind"),
    "transfer_target_seq_wrong": ([E("transfer", (A, f"{B}/lot/7", 5))], "kind"),
    "transfer_to_pending": ([E("transfer", (A, f"{B}/pending/8", 5))], "kind"),
    "transfer_from_two_owners": (
        [E("transfer", (A, f"{C}/lot/8", 5), (B, f"{C}/lot/8", 5))],
        "kind",
    ),
    "transfer_from_pending": ([E("transfer", (f"{A}/pending/3", f"{B}/lot/8", 5))], "kind"),
    # -- partner exchanges
    "exchange_out_to_two_partners": (
        [E("exchange_out", (A, AIR, 5), (f"{A}/lot/2", HOTEL, 5))],
        "kind",
    ),
    "exchange_out_to_a_program_account": ([E("exchange_out", (A, "program:air", 5))], "kind"),
    "exchange_out_from_pending": ([E("exchange_out", (f"{A}/pending/3", AIR, 5))], "kind"),
    "exchange_in_seq_wrong": ([E("exchange_in", (AIR, f"{A}/lot/3", 5))], "kind"),
    "exchange_in_from_two_partners": (
        [E("exchange_in", (AIR, f"{A}/lot/8", 5), (HOTEL, f"{A}/lot/8", 5))],
        "kind",
    ),
    "exchange_in_from_issued": ([E("exchange_in", (ISSUED, f"{A}/lot/8", 5))], "kind"),
    # -- outage shortfalls
    "shortfall_without_a_store": ([E("shortfall", (A, REDEEMED, 5))], "kind"),
    "shortfall_from_two_stores": (
        [E("shortfall", (STORE, REDEEMED, 5), (STORE2, REDEEMED, 5))],
        "kind",
    ),
    "shortfall_to_the_member": ([E("shortfall", (A, REDEEMED, 5), (STORE, A, 5))], "kind"),
    "shortfall_from_pending": (
        [E("shortfall", (f"{A}/pending/3", REDEEMED, 5), (STORE, REDEEMED, 5))],
        "kind",
    ),
    "shortfall_from_two_members": (
        [E("shortfall", (A, REDEEMED, 5), (B, REDEEMED, 5), (STORE, REDEEMED, 5))],
        "kind",
    ),
    "shortfall_from_a_malformed_store": (
        [E("shortfall", (A, REDEEMED, 5), ("shortfall:Store 1", REDEEMED, 5))],
        "kind",
    ),
    "redeem_from_a_store": ([E("redeem", (STORE, REDEEMED, 5))], "kind"),
    "reversal_of_a_shortfall": (
        [
            E("shortfall", (A, REDEEMED, 5), (STORE, REDEEMED, 5)),
            E("reverse", (REDEEMED, A, 5), reverses=8),
        ],
        "reversal",
    ),
    "settlement_beyond_what_was_owed": (
        [
            E("shortfall", (A, REDEEMED, 5), (STORE, REDEEMED, 5)),
            E("settlement", (SETTLED, STORE, 6)),
        ],
        "kind",
    ),
    "settlement_from_issued": (
        [
            E("shortfall", (A, REDEEMED, 5), (STORE, REDEEMED, 5)),
            E("settlement", (ISSUED, STORE, 5)),
        ],
        "kind",
    ),
    "settlement_to_a_member": ([E("settlement", (SETTLED, A, 5))], "kind"),
    "settlement_in_two_postings": (
        [
            E("shortfall", (A, REDEEMED, 5), (STORE, REDEEMED, 5)),
            E("settlement", (SETTLED, STORE, 2), (SETTLED, STORE, 2)),
        ],
        "kind",
    ),
    # -- reversals
    "reversal_of_an_earn_to_redeemed": (
        [E("reverse", (f"{A}/lot/2", REDEEMED, 5), reverses=2)],
        "reversal",
    ),
    "reversal_of_an_earn_from_held": (
        [E("reverse", (f"{A}/held/2", ISSUED, 5), reverses=2)],
        "reversal",
    ),
    "reversal_of_an_earn_from_another_member": (
        [E("reverse", (B, ISSUED, 5), reverses=2)],
        "reversal",
    ),
    "reversal_of_an_earn_to_a_rule_it_did_not_use": (
        [E("reverse", (f"{A}/pending/3", BONUS, 5), reverses=3)],
        "reversal",
    ),
    "over_reversal_of_an_earn_per_rule": (
        # the earn took 50 + 20: 21 back to the bonus rule is too much
        [E("reverse", (f"{A}/lot/2", BONUS, 21), reverses=2)],
        "reversal",
    ),
    "reversal_of_a_redeem_into_a_lot_it_never_took_from": (
        [E("reverse", (REDEEMED, f"{A}/pending/3", 5), reverses=5)],
        "reversal",
    ),
    "reversal_of_a_redeem_to_another_member": (
        [E("reverse", (REDEEMED, B, 5), reverses=5)],
        "reversal",
    ),
    "over_reversal_per_lot": (
        # the redeem took 20 from lot 0 and 10 from lot 2: 11 back to lot 2 is
        # too much although 11 < 30
        [E("reverse", (REDEEMED, f"{A}/lot/2", 11), reverses=5)],
        "reversal",
    ),
    "over_reversal_in_two_steps": (
        [
            E("reverse", (REDEEMED, f"{A}/lot/2", 6), reverses=5),
            E("reverse", (REDEEMED, f"{A}/lot/2", 5), reverses=5),
        ],
        "reversal",
    ),
    "reversal_of_a_capture_into_held": (
        [CAPTURE_4, E("reverse", (REDEEMED, f"{A}/held/0", 5), reverses=8)],
        "reversal",
    ),
    "reversal_of_a_capture_beyond_what_it_captured": (
        [CAPTURE_4, E("reverse", (REDEEMED, A, 41), reverses=8)],
        "reversal",
    ),
    "reversal_of_a_release": (
        [
            E("release", (f"{A}/held/0", A, 20), reverses=7),
            E("reverse", (A, f"{A}/held/0", 5), reverses=8),
        ],
        "reversal",
    ),
    "reversal_of_a_hold": ([E("reverse", (f"{A}/held/0", A, 5), reverses=7)], "reversal"),
    "reversal_of_a_reversal": (
        [
            E("reverse", (REDEEMED, A, 5), reverses=5),
            E("reverse", (A, REDEEMED, 5), reverses=8),
        ],
        "reversal",
    ),
    # -- vouchers (seq 8 is VOUCHER_8: 10 of lot 0 and 5 of lot 2 into COFFEE)
    "voucher_redeemed_twice": (
        [VOUCHER_8, E("voucher_redeem", (COFFEE, REDEEMED, 15), reverses=8)] * 1
        + [E("voucher_redeem", (COFFEE, REDEEMED, 15), reverses=8)],
        "reversal",
    ),
    "voucher_redeemed_then_cancelled": (
        [
            VOUCHER_8,
            E("voucher_redeem", (COFFEE, REDEEMED, 15), reverses=8),
            E("voucher_cancel", (COFFEE, A, 10), (COFFEE, f"{A}/lot/2", 5), reverses=8),
        ],
        "reversal",
    ),
    "voucher_redeemed_in_part": (
        [VOUCHER_8, E("voucher_redeem", (COFFEE, REDEEMED, 10), reverses=8)],
        "reversal",
    ),
    "voucher_redeem_into_expired": (
        [VOUCHER_8, E("voucher_redeem", (COFFEE, EXPIRED, 15), reverses=8)],
        "kind",
    ),
    "voucher_cancel_into_another_lot": (
        [VOUCHER_8, E("voucher_cancel", (COFFEE, A, 15), reverses=8)],
        "reversal",
    ),
    "voucher_cancel_to_another_member": (
        [VOUCHER_8, E("voucher_cancel", (COFFEE, B, 10), (COFFEE, f"{A}/lot/2", 5), reverses=8)],
        "reversal",
    ),
    "voucher_cancel_into_held": (
        [VOUCHER_8, E("voucher_cancel", (COFFEE, f"{A}/held/0", 15), reverses=8)],
        "kind",
    ),
    "voucher_expired_from_another_reward": (
        [
            VOUCHER_8,
            E("voucher_issue", (B, TOTE, 5)),
            E("voucher_expire", (TOTE, EXPIRED, 15), reverses=8),
        ],
        "reversal",
    ),
    "voucher_end_of_no_voucher": (
        [E("voucher_expire", (COFFEE, EXPIRED, 5), reverses=5)],
        "reversal",
    ),
    "voucher_issue_from_pending": (
        [E("voucher_issue", (f"{A}/pending/3", COFFEE, 5))],
        "kind",
    ),
    "voucher_issue_into_two_rewards": (
        [E("voucher_issue", (A, COFFEE, 5), (A, TOTE, 5))],
        "kind",
    ),
    "voucher_issue_of_two_members": (
        [E("voucher_issue", (A, COFFEE, 5), (B, COFFEE, 5))],
        "kind",
    ),
    "voucher_issue_naming_an_entry": (
        [E("voucher_issue", (A, COFFEE, 5), reverses=5)],
        "kind",
    ),
    "voucher_issue_into_a_program_account": (
        [E("voucher_issue", (A, REDEEMED, 5))],
        "kind",
    ),
    "voucher_issue_reversed": (
        [VOUCHER_8, E("reverse", (COFFEE, A, 10), reverses=8)],
        "reversal",
    ),
    # -- overdraft of one lot while the member has enough in total
    "redeem_overdraws_a_lot": ([E("redeem", (f"{A}/lot/2", REDEEMED, 51))], "overdraft"),
    "hold_overdraws_a_lot": ([E("hold", (f"{A}/lot/2", f"{A}/held/2", 51))], "overdraft"),
    # -- malformed member sub-account ids
    "malformed_leading_zero": ([E("earn", (ISSUED, f"{A}/lot/08", 5))], "kind"),
    "malformed_form": ([E("earn", (ISSUED, f"{A}/foo/8", 5))], "kind"),
    "malformed_lot_0": ([E("earn", (ISSUED, f"{A}/lot/0", 5))], "kind"),
    "malformed_held_00": ([E("hold", (A, f"{A}/held/00", 5))], "kind"),
    "malformed_extra_part": ([E("earn", (ISSUED, f"{A}/lot/8/1", 5))], "kind"),
    "malformed_in_a_reversal": (
        [E("reverse", (REDEEMED, f"{A}/lot/x", 5), reverses=5)],
        "kind",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_entry_is_caught(name: str) -> None:
    specs, check = HOSTILE[name]
    entries = extend(BASE, *specs)
    last = entries[-1].entry.sequence
    assert problems(entries) == [(last, check)]


def test_a_bad_capture_still_resolves_its_hold() -> None:
    # the first capture is wrong (too little), and the hold is resolved anyway
    short = E("capture", (f"{A}/held/0", REDEEMED, 15), reverses=7)
    entries = extend(BASE, short, CAPTURE_7)
    assert problems(entries) == [(8, "reversal"), (9, "reversal")]


def test_partial_reversals_per_lot_up_to_what_was_taken() -> None:
    entries = extend(
        BASE,
        E("reverse", (REDEEMED, f"{A}/lot/2", 4), (REDEEMED, A, 20), reverses=5),
        E("reverse", (REDEEMED, f"{A}/lot/2", 6), reverses=5),
    )
    assert problems(entries) == []
    assert problems(extend(entries, E("reverse", (REDEEMED, A, 1), reverses=5))) == [
        (10, "reversal")
    ]


def test_earn_reversal_may_take_from_other_available_or_pending_lots() -> None:
    entries = extend(
        BASE,
        E("reverse", (f"{A}/pending/3", ISSUED, 10), (A, BONUS, 20), reverses=2),
        E("reverse", (f"{A}/lot/2", ISSUED, 40), reverses=2),
    )
    assert problems(entries) == []
    assert problems(extend(entries, E("reverse", (f"{A}/lot/2", ISSUED, 1), reverses=2))) == [
        (10, "reversal")
    ]


# -- erasure of a family --------------------------------------------------------


def test_erase_of_the_whole_family_verifies_and_closes_it() -> None:
    erased = extend(BASE, erase_all(BASE, A))
    assert {p.from_account for p in erased[-1].entry.postings} == {
        A,
        f"{A}/lot/2",
        f"{A}/pending/3",
        f"{A}/held/0",
        f"{A}/held/2",
    }
    assert problems(erased) == []
    for hostile in (
        E("earn", (ISSUED, f"{A}/lot/9", 5)),  # a new lot of the closed family
        E("earn", (ISSUED, A, 5)),
        E("release", (f"{A}/held/0", A, 20), reverses=7),
        E("exchange_in", (AIR, f"{A}/pending/9", 5)),
    ):
        entries = extend(erased, hostile)
        closed = [(9, "closed")] * len([a for p in hostile[1] for a in p[:2] if owner_of(a) == A])
        assert [p for p in problems(entries) if p[1] == "closed"] == closed
        assert closed
    # B is untouched by A's erasure
    assert problems(extend(erased, E("transfer", (B, f"{B}/lot/9", 5)))) == [(9, "kind")]
    assert problems(extend(erased, E("redeem", (B, REDEEMED, 5)))) == []


def test_posting_to_a_closed_familys_lot_after_erase() -> None:
    erased = extend(BASE, erase_all(BASE, A))
    entries = extend(erased, E("earn", (ISSUED, f"{A}/lot/9", 5)))
    assert problems(entries) == [(9, "closed")]


def test_reversal_of_an_erased_members_redeem_is_closed() -> None:
    erased = extend(BASE, erase_all(BASE, A))
    entries = extend(erased, E("reverse", (REDEEMED, A, 5), reverses=5))
    assert problems(entries) == [(9, "closed")]


def test_erase_leaving_held_points_behind() -> None:
    spec = erase_all(BASE, A)
    without_held = E("erase", *(p for p in spec[1] if "/held/" not in p[0]))
    assert problems(extend(BASE, without_held)) == [(8, "kind")]


def test_erase_leaving_pending_points_behind() -> None:
    spec = erase_all(BASE, A)
    without_pending = E("erase", *(p for p in spec[1] if "/pending/" not in p[0]))
    assert problems(extend(BASE, without_pending)) == [(8, "kind")]


def test_erase_of_two_owners() -> None:
    spec = erase_all(BASE, A)
    both = E("erase", *spec[1], (B, FORFEITED, 10))
    assert problems(extend(BASE, both)) == [(8, "kind")]


def test_erase_into_the_wrong_account() -> None:
    spec = erase_all(BASE, A)
    wrong = E("erase", *((f, EXPIRED if f == A else t, n) for f, t, n in spec[1]))
    assert problems(extend(BASE, wrong)) == [(8, "kind")]


def test_erase_counts_a_malformed_sub_account_of_the_family() -> None:
    # points parked in a malformed id of A's family (reported as kind where
    # they are parked) must still be gone after A's erasure
    parked = extend(BASE, E("redeem", (A, f"{A}/lot/007", 5)))
    assert problems(parked) == [(8, "kind")]
    complete = erase_all(parked, A)
    assert (f"{A}/lot/007", FORFEITED, 5) in complete[1]
    # the malformed id is reported again, the family is left at 0
    assert problems(extend(parked, complete)) == [(8, "kind"), (9, "kind")]
    incomplete = E("erase", *(p for p in complete[1] if not p[0].endswith("/007")))
    entries = extend(parked, incomplete)
    assert problems(entries) == [(8, "kind"), (9, "kind")]
    assert f"{A}/lot/007 5" in check_chain(entries).problems[-1].message
