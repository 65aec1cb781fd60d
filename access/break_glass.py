"""Break-glass: an admin-granted, time-limited elevation with a reason.

In an emergency a principal may need to read a member beyond what its role
and purposes allow. An admin grants that principal a break-glass grant: a
mandatory reason (scanned for personal data like every free-text field), a
duration of at most ``MAX_DURATION_S``, never to the admin themself (two
people are needed to break the glass). While the grant is active the
grantee may declare the purpose ``break_glass``, which shows every field;
every such read is recorded naming the grant.

Every grant is recorded twice, as separate events: ``start`` when it is
granted and ``end`` when it is ended (by the admin or the grantee) or
expires. Expiry is noticed by ``BreakGlass.sweep``, which the server calls
on a timer and at start-up, so a grant that expired while the server was
down still gets its end event (with the expiry time).

Rules enforced here (the handlers never decide):
- reason 10..256 characters, no personal data; duration 60..14400 s;
- grantor is an admin and is not the grantee;
- a channel principal is never elevated (channels never see personal data);
- a grant ends once; only an admin or the grantee may end it;
- a grantee holds at most one active grant.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from access.detectors import check_free_text
from access.errors import AccessRequestError, PermissionDeniedError
from access.principal import Principal, Role

MIN_DURATION_S = 60
MAX_DURATION_S = 4 * 3600
REASON_MIN, REASON_MAX = 10, 256
EXPIRY = "expiry"  # ended_by of a grant that ran out
RELOAD_S = 1.0  # how stale this process's view of grants may be
GRANTEE = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a principal id, never a name or e-mail

Clock = Callable[[], int]  # microseconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    grantee: str
    granted_by: str
    reason: str
    starts_us: int
    expires_us: int
    ended_us: int = 0  # 0 while not ended
    ended_by: str = ""

    def active(self, now_us: int) -> bool:
        return not self.ended_us and now_us < self.expires_us


class GrantStore(Protocol):
    """Where grants and their ends are kept (append-only, shared by every
    server process)."""

    def load(self) -> list[Grant]: ...
    def save_start(self, grant: Grant) -> None: ...
    def save_end(self, grant: Grant) -> bool:
        """Record the end; False if it was already recorded (by another process)."""
        ...


class GrantEvents(Protocol):
    """Who hears of starts and ends: the access log."""

    def started(self, grant: Grant) -> None: ...
    def ended(self, grant: Grant) -> None: ...


class BreakGlass:
    def __init__(
        self,
        *,
        store: GrantStore,
        events: GrantEvents,
        clock: Clock,
        reload_s: float = RELOAD_S,
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._reload_s = reload_s
        self._lock = threading.Lock()
        self._grants = {g.grant_id: g for g in store.load()}
        self._loaded = time.monotonic()

    def _fresh(self) -> None:
        """Re-read the grants when the view is older than ``reload_s``: a
        grant or an end recorded by another server process counts here
        within that time. Call with the lock held."""
        if time.monotonic() - self._loaded >= self._reload_s:
            self._grants = {g.grant_id: g for g in self._store.load()}
            self._loaded = time.monotonic()

    def grant(self, admin: Principal, grantee: str, reason: str, duration_s: int) -> Grant:
        if admin.role is not Role.ADMIN:
            raise PermissionDeniedError("grant: only an admin may grant break-glass")
        if not GRANTEE.fullmatch(grantee):
            raise AccessRequestError("grantee", "must be a principal id: [A-Za-z0-9._:-]{1,128}")
        if grantee == admin.id:
            raise PermissionDeniedError("grantee: an admin may not grant break-glass to themself")
        if not REASON_MIN <= len(reason.strip()) <= REASON_MAX:
            raise AccessRequestError(
                "reason", f"is mandatory: {REASON_MIN}..{REASON_MAX} characters"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in reason):
            raise AccessRequestError("reason", "must not contain control characters")
        check_free_text("reason", reason)
        if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
            raise AccessRequestError(
                "duration_seconds", f"must be {MIN_DURATION_S}..{MAX_DURATION_S}"
            )
        now = self._clock()
        with self._lock:
            self._fresh()
            if self._active_for(grantee, now) is not None:
                raise PermissionDeniedError("grantee: already holds an active break-glass grant")
            grant = Grant(
                grant_id="bg_" + secrets.token_hex(8),
                grantee=grantee,
                granted_by=admin.id,
                reason=reason.strip(),
                starts_us=now,
                expires_us=now + duration_s * 1_000_000,
            )
            # the start event is durable first: no grant without its record
            self._events.started(grant)
            self._store.save_start(grant)
            self._grants[grant.grant_id] = grant
        return grant

    def end(self, grant_id: str, by: Principal) -> Grant:
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None or not grant.ended_us:
                self._loaded = float("-inf")  # it may be new, or ended elsewhere
                self._fresh()
                grant = self._grants.get(grant_id)
            if grant is None:
                raise AccessRequestError("grant_id", "no such break-glass grant")
            if by.role is not Role.ADMIN and by.id != grant.grantee:
                raise PermissionDeniedError("grant_id: only an admin or the grantee may end it")
            if grant.ended_us:
                return grant  # ending twice is a no-op, not a second end event
            now = self._clock()
            by_whom = by.id if now < grant.expires_us else EXPIRY
            ended = _ended(grant, min(now, grant.expires_us), by_whom)
            recorded = self._store.save_end(ended)
            self._grants[grant_id] = ended
        if recorded:
            self._events.ended(ended)
        return ended

    def sweep(self) -> list[Grant]:
        """Record the end of every grant that has expired; returns them."""
        now = self._clock()
        done: list[Grant] = []
        with self._lock:
            self._fresh()
            for grant in list(self._grants.values()):
                if not grant.ended_us and now >= grant.expires_us:
                    ended = _ended(grant, grant.expires_us, EXPIRY)
                    if self._store.save_end(ended):  # not already ended elsewhere
                        done.append(ended)
                    self._grants[grant.grant_id] = ended
        for grant in done:
            self._events.ended(grant)
        return done

    def active_grant(self, principal: Principal) -> Grant | None:
        """The principal's active grant, if it may be elevated at all.

        Called on the gate's path (an event loop): it never waits for the
        lock. A grant or an end in progress in another thread holds the
        lock while its event is recorded, and that recording may itself
        need the event loop (a worker's link to the writer), so waiting
        here could deadlock. When the lock is busy, the view held now is
        used (at most ``reload_s`` old, as always)."""
        if principal.role is Role.CHANNEL:
            return None
        if self._lock.acquire(blocking=False):
            try:
                self._fresh()
            finally:
                self._lock.release()
        return self._active_for(principal.id, self._clock())

    def grants(self, *, active_only: bool = False) -> list[Grant]:
        now = self._clock()
        with self._lock:
            self._fresh()
            found: Iterable[Grant] = self._grants.values()
            if active_only:
                found = (g for g in found if g.active(now))
            return sorted(found, key=lambda g: g.starts_us, reverse=True)

    def next_expiry_us(self) -> int | None:
        with self._lock:
            pending = [g.expires_us for g in self._grants.values() if not g.ended_us]
        return min(pending) if pending else None

    def _active_for(self, grantee: str, now: int) -> Grant | None:
        for grant in list(self._grants.values()):  # a snapshot: others may add meanwhile
            if grant.grantee == grantee and grant.active(now):
                return grant
        return None


def _ended(grant: Grant, at_us: int, by: str) -> Grant:
    return replace(grant, ended_us=at_us, ended_by=by)
