"""What a batch plans over besides members' lots: the chain head, the
reversible entries commands name, idempotency records, and how entry
details are sealed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from audit.accounts import available_form, owner_of
from audit.entry_format import Posting, is_member_account
from ledger.commands import KIND_EARN, PROGRAM_REDEEMED, EntryDetails

SYSTEM = "program"  # the channel of entries the ledger posts by itself

IdemKey = tuple[str, str]
# details -> the bytes the entry carries (sealed under the member's key);
# raises LedgerError if the member's key cannot be used
DetailsSealer = Callable[[str, EntryDetails], bytes]


# (entry sequence, details of a replayed request) -> whether that entry
# carried those details
SameDetails = Callable[[int, EntryDetails], bool]


def clear_details(member: str, details: EntryDetails) -> bytes:
    return details.encode()


def same_clear_details(sequence: int, details: EntryDetails) -> bool:
    return True  # without the stored entry at hand: trust the fingerprint


@dataclass(slots=True)
class Original:
    """A reversible entry (earn, redeem, capture) and what its reversals
    returned so far, per account they returned to (docs/journal-format.md 5.3)."""

    sequence: int
    kind: str
    postings: tuple[Posting, ...]
    channel: str = ""  # the channel that made it (the reversal policy)
    reversed: dict[str, int] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return next(
            (
                owner_of(a)
                for p in self.postings
                for a in (p.from_account, p.to_account)
                if is_member_account(a)
            ),
            "",
        )

    def limits(self) -> list[tuple[str, int]]:
        """(account a reversal returns points to, points still returnable),
        in the order a reversal uses them (the last one first)."""
        given: dict[str, int] = {}
        for p in self.postings:
            if self.kind == KIND_EARN:
                key = p.from_account  # a program:issued* account
            elif p.to_account == PROGRAM_REDEEMED:
                key = available_form(p.from_account)
            else:
                continue
            given[key] = given.get(key, 0) + p.points
        out = [(k, n - self.reversed.get(k, 0)) for k, n in given.items()]
        return [(k, n) for k, n in reversed(out) if n > 0]

    @property
    def left(self) -> int:
        return sum(n for _, n in self.limits())


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    channel_id: str
    idempotency_key: str
    fingerprint: bytes
    response: bytes
    sequence: int | None


@dataclass(slots=True)
class Head:
    sequence: int
    hash: bytes
    time_us: int
    epoch: int = 0  # moves on every erasure (journal_head.epoch)


def first(limits: list[tuple[str, int]], points: int) -> list[tuple[str, int]]:
    """The first ``points`` of ``limits`` (e.g. an ``Original.limits()``), in order."""
    out: list[tuple[str, int]] = []
    for key, n in limits:
        if points == 0:
            break
        use = min(n, points)
        out.append((key, use))
        points -= use
    return out
