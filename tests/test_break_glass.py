"""Break-glass rules, with several server processes sharing one store:
an end recorded by one is honoured by the others within the reload time,
and an end is recorded (and announced) once."""

from __future__ import annotations

import pytest

from access.break_glass import BreakGlass, Grant
from access.errors import AccessRequestError, PermissionDeniedError
from access.principal import Principal, Role

ADMIN = Principal("admin-1", Role.ADMIN)
ANALYST = Principal("analyst-9", Role.ANALYST)
POS = Principal("pos-1", Role.CHANNEL, "pos-test")


class SharedStore:
    """What the grant tables hold, shared by every process (a fake)."""

    def __init__(self) -> None:
        self.grants: dict[str, Grant] = {}

    def load(self) -> list[Grant]:
        return list(self.grants.values())

    def save_start(self, grant: Grant) -> None:
        self.grants[grant.grant_id] = grant

    def save_end(self, grant: Grant) -> bool:
        if self.grants[grant.grant_id].ended_us:
            return False
        self.grants[grant.grant_id] = grant
        return True


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, grant: Grant) -> None:
        self.seen.append(("start", grant.grant_id))

    def ended(self, grant: Grant) -> None:
        self.seen.append(("end", grant.grant_id))


class Clock:
    now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


def processes(n: int = 2) -> tuple[list[BreakGlass], Events, Clock]:
    store, events, clock = SharedStore(), Events(), Clock()
    return (
        [BreakGlass(store=store, events=events, clock=clock, reload_s=0) for _ in range(n)],
        events,
        clock,
    )


def test_end_on_one_process_counts_on_the_other() -> None:
    (a, b), events, _ = processes()
    grant = a.grant(ADMIN, ANALYST.id, "incident T-1 review", 600)
    assert b.active_grant(ANALYST) is not None
    a.end(grant.grant_id, ADMIN)
    assert b.active_grant(ANALYST) is None
    assert b.end(grant.grant_id, ADMIN).ended_by == "admin-1"  # already ended: no second event
    assert events.seen == [("start", grant.grant_id), ("end", grant.grant_id)]


def test_expiry_is_announced_once_across_processes() -> None:
    (a, b), events, clock = processes()
    grant = a.grant(ADMIN, ANALYST.id, "incident T-2 review", 60)
    clock.now += 61_000_000
    assert a.active_grant(ANALYST) is None and b.active_grant(ANALYST) is None
    a.sweep()
    b.sweep()
    assert events.seen == [("start", grant.grant_id), ("end", grant.grant_id)]
    assert b.grants()[0].ended_by == "expiry" and b.grants()[0].ended_us == grant.expires_us


def test_rules() -> None:
    (a, b), _, _ = processes()
    with pytest.raises(PermissionDeniedError, match="themself"):
        a.grant(ADMIN, ADMIN.id, "incident T-3 review", 600)
    with pytest.raises(PermissionDeniedError, match="only an admin"):
        a.grant(ANALYST, "analyst-2", "incident T-3 review", 600)
    with pytest.raises(AccessRequestError, match="control characters"):
        a.grant(ADMIN, ANALYST.id, "incident\x00T-3 review", 600)
    with pytest.raises(AccessRequestError, match="grantee"):
        a.grant(ADMIN, "Test Person <test@example.invalid>", "incident T-3 review", 600)
    a.grant(ADMIN, ANALYST.id, "incident T-3 review", 600)
    with pytest.raises(PermissionDeniedError, match="already holds"):
        b.grant(ADMIN, ANALYST.id, "incident T-4 review", 600)  # one active grant, any process
    grant = a.grant(ADMIN, POS.id, "incident T-5 review", 600)
    assert a.active_grant(POS) is None  # a channel is never elevated
    with pytest.raises(PermissionDeniedError, match="admin or the grantee"):
        a.end(grant.grant_id, ANALYST)
