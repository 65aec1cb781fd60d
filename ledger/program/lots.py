"""A member's points as lots: the family of sub-accounts one member owns
(docs/journal-format.md 5.2) and the pure decisions on it.

The planner keeps one ``Family`` per member a batch touches; reads build
one from the stored rows to show a balance. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.accounts import lot_of, parse_member_account
from audit.entry_format import Posting
from ledger.program.tiers import Stats

NEVER = 1 << 62  # sorts after every real expiry


@dataclass(frozen=True, slots=True)
class LotTerms:
    expires_us: int = 0  # 0: never
    matures_us: int = 0  # 0: available when earned


@dataclass(slots=True)
class HoldState:
    """An open hold: the points it moved into held/N accounts, in order."""

    sequence: int
    owner: str
    postings: tuple[Posting, ...]  # available form of N -> held/N
    expires_us: int
    channel_id: str

    @property
    def points(self) -> int:
        return sum(p.points for p in self.postings)


@dataclass(slots=True)
class Family:
    owner: str
    accounts: dict[str, int]  # sub-account -> balance (zero ones may be absent)
    terms: dict[int, LotTerms] = field(default_factory=dict)  # lot -> terms; lot 0: never
    holds: dict[int, HoldState] = field(default_factory=dict)  # open holds
    closed: bool = False
    tier: str = "none"
    # category -> time of the member's last purchase in it (follow-up rewards)
    recent: dict[str, int] = field(default_factory=dict)
    recent_changed: bool = False
    stats: Stats = field(default_factory=Stats)  # tiers and referrals

    def note_purchase(self, categories: tuple[str, ...], when_us: int) -> None:
        for category in categories:
            if self.recent.get(category, 0) < when_us:
                self.recent[category] = when_us
                self.recent_changed = True

    def terms_of(self, lot: int) -> LotTerms:
        return self.terms.get(lot, LotTerms())

    def spend_order(self) -> list[tuple[str, int]]:
        """Available accounts with points, soonest expiry first, then oldest."""
        found = []
        for account, points in self.accounts.items():
            if points <= 0:
                continue
            parsed = parse_member_account(account)
            if parsed is None or parsed.form not in ("legacy", "lot"):
                continue
            expires = self.terms_of(parsed.lot).expires_us or NEVER
            found.append((expires, parsed.lot, account, points))
        found.sort()
        return [(account, points) for _, _, account, points in found]

    def available(self) -> int:
        return sum(points for _, points in self.spend_order())

    def take(self, points: int) -> list[tuple[str, int]] | None:
        """Which available accounts give ``points``, in spend order; None
        when the member has fewer available points."""
        taken: list[tuple[str, int]] = []
        left = points
        for account, have in self.spend_order():
            if left == 0:
                break
            use = min(have, left)
            taken.append((account, use))
            left -= use
        return taken if left == 0 else None

    def due(
        self, now_us: int
    ) -> tuple[list[HoldState], list[tuple[str, int]], list[tuple[str, int]]]:
        """What time has made due: holds past their timeout, pending lots
        past their return window (pending account, points), and lots past
        their expiry (lot account, points)."""
        holds = sorted(
            (h for h in self.holds.values() if h.expires_us <= now_us), key=lambda h: h.sequence
        )
        maturing, expiring = [], []
        for account, points in sorted(self.accounts.items(), key=lambda kv: lot_of(kv[0])):
            if points <= 0:
                continue
            parsed = parse_member_account(account)
            if parsed is None:
                continue
            terms = self.terms_of(parsed.lot)
            if parsed.form == "pending" and terms.matures_us <= now_us:
                maturing.append((account, points))
            elif parsed.form == "lot" and terms.expires_us and terms.expires_us <= now_us:
                expiring.append((account, points))
        return holds, maturing, expiring


@dataclass(frozen=True, slots=True)
class BalanceView:
    available: int
    pending: int
    held: int
    expiring: tuple[tuple[int, int], ...]  # (expires_us, points) of available lots, soonest first

    @property
    def total(self) -> int:
        return self.available + self.pending + self.held


def view(family: Family, now_us: int) -> BalanceView:
    """The balance as of ``now_us``, counting what time has made due as if
    it were already settled: a timed-out hold is available again, a matured
    lot is available, an expired lot is gone."""
    available = pending = held = 0
    open_held: dict[str, int] = {}
    for hold in family.holds.values():
        if hold.expires_us > now_us:
            for p in hold.postings:
                open_held[p.to_account] = open_held.get(p.to_account, 0) + p.points
    by_lot: dict[int, int] = {}
    for account, points in family.accounts.items():
        parsed = parse_member_account(account)
        if parsed is None or points <= 0:
            continue
        terms = family.terms_of(parsed.lot)
        if parsed.form == "held":
            still = min(points, open_held.get(account, 0))
            held += still
            points -= still  # held by timed-out holds: back in its lot
        elif parsed.form == "pending" and terms.matures_us > now_us:
            pending += points
            continue
        if terms.expires_us and terms.expires_us <= now_us and parsed.lot:
            continue  # expired
        available += points
        by_lot[parsed.lot] = by_lot.get(parsed.lot, 0) + points
    expiring = sorted(
        (family.terms_of(lot).expires_us, points)
        for lot, points in by_lot.items()
        if family.terms_of(lot).expires_us
    )
    return BalanceView(available, pending, held, tuple(expiring))


def pair(sources: list[tuple[str, int]], targets: list[tuple[str, int]]) -> list[Posting]:
    """Postings that move each source's points to the targets in order
    (both lists carry the same total)."""
    out: list[Posting] = []
    si = ti = 0
    s_left = sources[0][1] if sources else 0
    t_left = targets[0][1] if targets else 0
    while si < len(sources) and ti < len(targets):
        use = min(s_left, t_left)
        if use:
            out.append(Posting(sources[si][0], targets[ti][0], use))
        s_left -= use
        t_left -= use
        if s_left == 0:
            si += 1
            s_left = sources[si][1] if si < len(sources) else 0
        if t_left == 0:
            ti += 1
            t_left = targets[ti][1] if ti < len(targets) else 0
    return out
