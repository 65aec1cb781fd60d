"""The pure batch planner, without storage: what one batch decides."""

from __future__ import annotations

import pytest

from audit.entry_format import GENESIS_PREV_HASH
from ledger.commands import Earn, EntryDetails, Redeem, RequestMeta, Reverse
from ledger.errors import IdempotencyConflictError, InsufficientPointsError
from ledger.planner import BatchPlanner, Head
from ledger.program.lots import Family

MEMBER = "mbr_" + "a" * 26


def _planner() -> BatchPlanner:
    return BatchPlanner(
        head=Head(0, GENESIS_PREV_HASH, 0),
        now_us=1_000,
        balances={"program:issued": 0, "program:redeemed": 0},
        families={MEMBER: Family(MEMBER, {MEMBER: 0})},
        originals={},
        idempotency={},
    )


def _meta(key: str, fingerprint: bytes = b"f" * 32) -> RequestMeta:
    return RequestMeta("pos-test", key, fingerprint)


def _render(outcome: object) -> bytes:
    return repr(outcome).encode()


def test_reverse_of_an_entry_appended_earlier_in_the_same_batch() -> None:
    planner = _planner()
    planner.apply(Earn(_meta("k-earn-01"), MEMBER, 30, EntryDetails(), render=_render))
    planner.apply(Reverse(_meta("k-rev-001"), MEMBER, 1, 10, EntryDetails(), render=_render))
    with pytest.raises(InsufficientPointsError):  # 20 left, and reversal bounds hold
        planner.apply(Redeem(_meta("k-red-001"), MEMBER, 21, EntryDetails(), render=_render))
    assert planner.balance_of(MEMBER + "/lot/1") == 20
    assert planner.families[MEMBER].available() == 20
    assert [e.kind for e, _ in planner.entries] == ["earn", "reverse"]
    assert planner.originals[1].reversed == {"program:issued": 10}


def test_same_key_twice_in_one_batch() -> None:
    planner = _planner()
    first = planner.apply(Earn(_meta("k-same-01"), MEMBER, 5, EntryDetails(), render=_render))
    again = planner.apply(Earn(_meta("k-same-01"), MEMBER, 5, EntryDetails(), render=_render))
    assert again == first
    assert len(planner.entries) == 1
    with pytest.raises(IdempotencyConflictError):
        planner.apply(
            Earn(_meta("k-same-01", b"g" * 32), MEMBER, 6, EntryDetails(), render=_render)
        )


def test_refused_command_changes_nothing() -> None:
    planner = _planner()
    with pytest.raises(InsufficientPointsError):
        planner.apply(Redeem(_meta("k-red-002"), MEMBER, 1, EntryDetails(), render=_render))
    assert planner.entries == [] and planner.new_records == [] and planner.touched == {}
    assert planner.head.sequence == 0
