"""A member's points as lots: the family of sub-accounts one member owns
(docs/journal-format.md 5.2) and the pure decisions on it.

The planner keeps one ``Family`` per member a batch touches; reads build
one from the stored rows to show a balance. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from audit.accounts import parse_member_account
from audit.entry_format import Posting
from ledger.program.tiers import Stats

NEVER = 1 << 62  # sorts after every real expiry
# account ids parse the same every time; the hot paths parse the same few often
_parse = lru_cache(maxsize=1 << 16)(parse_member_account)  # ~13 MiB when full


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
    # category -> time of the member's last purchase in it (follow-up rewards)
    recent: dict[str, int] = field(default_factory=dict)
    recent_changed: bool = False
    stats: Stats = field(default_factory=Stats)  # tiers and referrals
    # kept up to date by add() once computed: points per form ("lot" counts
    # lot 0 too), and the earliest time anything of the family falls due
    _totals: dict[str, int] | None = None
    _expiring: dict[int, int] | None = None  # expiry moment -> available points
    _next_due: int | None = None

    def add(self, account: str, points: int) -> None:
        """Move ``points`` (signed) into one of the family's accounts."""
        self.accounts[account] = self.accounts.get(account, 0) + points
        parsed = _parse(account)
        if parsed is None:
            return
        if self._totals is not None:
            form = "lot" if parsed.form == "legacy" else parsed.form
            self._totals[form] = self._totals.get(form, 0) + points
        if self._expiring is not None and parsed.form == "lot":
            self._count_expiring(parsed.lot, points)
        if points > 0 and self._next_due is not None:
            due = self._due_of(parsed.form, parsed.lot)
            if due:
                self._next_due = min(self._next_due, due)

    def add_hold(self, hold: HoldState) -> None:
        self.holds[hold.sequence] = hold
        if self._next_due is not None:
            self._next_due = min(self._next_due, hold.expires_us)

    def settled_view(self) -> BalanceView:
        """The balance when nothing is due (right after a settle): the sums
        per form and per expiry moment, kept up to date by add() once
        computed, without walking the lots."""
        if self._totals is None:
            self._totals = {}
            for account, points in self.accounts.items():
                parsed = _parse(account)
                if parsed is not None:
                    form = "lot" if parsed.form == "legacy" else parsed.form
                    self._totals[form] = self._totals.get(form, 0) + points
        if self._expiring is None:
            self._expiring = {}
            for account, points in self.accounts.items():
                parsed = _parse(account)
                if parsed is not None and parsed.form == "lot" and points:
                    self._count_expiring(parsed.lot, points)
        t = self._totals
        expiring = tuple(sorted((e, n) for e, n in self._expiring.items() if n > 0))
        return BalanceView(t.get("lot", 0), t.get("pending", 0), t.get("held", 0), expiring)

    def _count_expiring(self, lot: int, points: int) -> None:
        assert self._expiring is not None
        expires = self.terms_of(lot).expires_us
        if expires:
            left = self._expiring.get(expires, 0) + points
            if left:
                self._expiring[expires] = left
            else:
                self._expiring.pop(expires, None)

    def _due_of(self, form: str, lot: int) -> int:
        terms = self.terms_of(lot)
        if form == "lot":
            return terms.expires_us
        if form == "pending":
            return min((d for d in (terms.matures_us, terms.expires_us) if d), default=0)
        return 0

    def next_due(self) -> int:
        """The earliest time a hold of the family times out or one of its
        lots matures or expires (NEVER when none will)."""
        if self._next_due is None:
            found = [h.expires_us for h in self.holds.values()]
            for account, points in self.accounts.items():
                parsed = _parse(account)
                if parsed is not None and points > 0:
                    due = self._due_of(parsed.form, parsed.lot)
                    if due:
                        found.append(due)
            self._next_due = min(found, default=NEVER)
        return self._next_due

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
            parsed = _parse(account)
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
        if now_us < self.next_due():
            return [], [], []
        self._next_due = None  # something is due: look again after it is settled
        holds = sorted(
            (h for h in self.holds.values() if h.expires_us <= now_us), key=lambda h: h.sequence
        )
        maturing, expiring = [], []
        for account, points in sorted(self.accounts.items(), key=_lot_key):
            if points <= 0:
                continue
            parsed = _parse(account)
            if parsed is None:
                continue
            terms = self.terms_of(parsed.lot)
            expired = bool(terms.expires_us) and terms.expires_us <= now_us
            if parsed.form == "pending" and (terms.matures_us <= now_us or expired):
                maturing.append((account, points))  # expired ones then expire as lots
            elif parsed.form == "lot" and terms.expires_us and terms.expires_us <= now_us:
                expiring.append((account, points))
        return holds, maturing, expiring


def _lot_key(item: tuple[str, int]) -> int:
    parsed = _parse(item[0])
    return parsed.lot if parsed is not None else -1


@dataclass(frozen=True, slots=True)
class BalanceView:
    available: int
    pending: int
    held: int
    # (expires_us, points) of available lots, soonest first; one line per moment
    expiring: tuple[tuple[int, int], ...]

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
        parsed = _parse(account)
        if parsed is None or points <= 0:
            continue
        terms = family.terms_of(parsed.lot)
        if parsed.form == "held":
            still = min(points, open_held.get(account, 0))
            held += still
            points -= still  # held by timed-out holds: back in its lot
        if terms.expires_us and terms.expires_us <= now_us and parsed.lot:
            continue  # expired (pending points too: they can never be spent)
        if parsed.form == "pending" and terms.matures_us > now_us:
            pending += points
            continue
        available += points
        by_lot[parsed.lot] = by_lot.get(parsed.lot, 0) + points
    by_expiry: dict[int, int] = {}  # lots that expire at the same moment are one line
    for lot, points in by_lot.items():
        expires = family.terms_of(lot).expires_us
        if expires:
            by_expiry[expires] = by_expiry.get(expires, 0) + points
    return BalanceView(available, pending, held, tuple(sorted(by_expiry.items())))


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
