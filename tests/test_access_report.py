"""The security access report over a seeded access history: every planted
pattern is found, with its evidence, and a clean history has no finding."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.decisions import AccessDecision
from ledger.appender import Appender
from ledger.commands import (
    Earn,
    Enroll,
    EntryDetails,
    RequestMeta,
    SealedMember,
    new_member_account_id,
)
from ledger.reports.access_report import build_access_report
from ledger.storage.database import Database, open_database
from ledger.storage.migrate import upgrade

DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday
GET_MEMBER = "/loyalty.members.v1.MemberService/GetMember"
GET_BALANCE = "/loyalty.ledger.v1.LedgerService/GetBalance"
FIND_MEMBER = "/loyalty.members.v1.MemberService/FindMember"
EARN = "/loyalty.ledger.v1.LedgerService/Earn"
_keys = itertools.count()


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


class History:
    """A ledger database with a journal and an access log written through
    the real appender, at times the test chooses."""

    def __init__(self, tmp: Path) -> None:
        self.db: Database = open_database(f"sqlite:///{tmp / 'ledger.db'}")
        upgrade(self.db)
        self.now = _us(DAY)
        self.appender = Appender(db=self.db, clock=lambda: self.now)

    def close(self) -> None:
        self.appender.close()
        self.db.dispose()

    def at(self, moment: dt.datetime) -> History:
        self.now = _us(moment)
        return self

    def member(self) -> str:
        account = new_member_account_id()
        self.appender.append_blocking(
            Enroll(self._meta(), account, SealedMember(1, 1, b"test-key", (), ()), _render)
        )
        return account

    def earn(self, member: str, channel: str = "pos-test") -> None:
        meta = RequestMeta(channel, f"k-{next(_keys):010d}", b"f" * 32)
        self.appender.append_blocking(Earn(meta, member, 10, EntryDetails(), _render))

    def _meta(self) -> RequestMeta:
        return RequestMeta("pos-test", f"k-{next(_keys):010d}", b"f" * 32)

    def access(
        self,
        principal: str,
        role: str,
        method: str,
        member: str = "",
        *,
        decision: str = "allow",
        purpose: str = "",
        fields: str = "",
        reason: str = "",
    ) -> None:
        self.appender.record_blocking(
            AccessDecision(
                time_us=self.now,
                request_id=f"req-{next(_keys)}",
                principal=principal,
                role=role,
                method=method,
                decision=decision,
                reason=reason,
                purpose=purpose,
                member_account_id=member,
                fields=fields,
            )
        )

    def report(self) -> dict:
        return build_access_report(
            self.db,
            from_us=_us(DAY - dt.timedelta(days=1)),
            to_us=_us(DAY + dt.timedelta(days=3)),
            origin="loyalty-ledger.test/access",
            now_us=self.now,
        )


def _render(outcome: object) -> bytes:
    return b""


def _clean_day(h: History) -> list[str]:
    """An ordinary day: tills earn for their members and read balances;
    five support agents each look up a handful of members who bought."""
    members = [h.member() for _ in range(40)]
    h.at(DAY.replace(hour=9))
    for m in members:
        h.access("pos-test", "channel", FIND_MEMBER, m)  # the till looks the member up first
        h.earn(m)
        h.access("pos-test", "channel", EARN, m)
        h.access("pos-test", "channel", GET_BALANCE, m)
    for agent in range(5):
        h.at(DAY.replace(hour=10 + agent))
        for m in members[agent * 6 : agent * 6 + 6]:
            h.access(
                f"agent-{agent}",
                "member_service",
                GET_MEMBER,
                m,
                purpose="customer_support",
                fields="phone,email",
            )
    # one refused call is not a pattern
    h.access("agent-0", "member_service", EARN, decision="deny", reason="role: may not call")
    return members


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path)
    yield h
    h.close()


def test_clean_history_has_no_findings(history: History) -> None:
    _clean_day(history)
    report = history.report()
    assert report["findings"] == []
    assert report["totals"]["records"] == 40 * 3 + 30 + 1
    assert report["totals"]["denied"] == 1
    agents = {p["principal"]: p for p in report["by_principal"]}
    assert agents["agent-1"]["members"] == 6 and agents["agent-1"]["fields"] == {
        "email": 6,
        "phone": 6,
    }
    assert report["by_purpose"] == [
        {"purpose": "customer_support", "calls": 30, "fields": {"email": 30, "phone": 30}}
    ]


def test_planted_patterns_are_each_found_with_evidence(history: History) -> None:
    members = _clean_day(history)
    # insider theft: one agent reads 200 members in a day (all of them bought)
    many = [history.member() for _ in range(200)]
    history.at(DAY.replace(hour=9, minute=30))
    for m in many:
        history.earn(m)
    history.at(DAY.replace(hour=16))
    for m in many:
        history.access(
            "agent-7", "member_service", GET_MEMBER, m, purpose="customer_support", fields="phone"
        )
    # a read of a member with no business event at all
    dormant = history.member()
    history.at(DAY.replace(hour=16, minute=30))
    history.access(
        "agent-9", "member_service", GET_MEMBER, dormant, purpose="customer_support", fields="phone"
    )
    # a till reading balances of members it never served
    for m in members[:4]:
        history.access("pos-other", "channel", GET_BALANCE, m)
    # repeated denials: a principal probing
    history.at(DAY.replace(hour=17))
    for _ in range(6):
        history.access(
            "probe-1", "channel", GET_MEMBER, decision="deny", reason="role: channel may not call"
        )
    # after hours: reads at 02:00 (the logs' time never goes backwards: in order)
    history.at(DAY.replace(hour=2) + dt.timedelta(days=1))
    for m in members[:3]:
        history.access(
            "agent-8", "member_service", GET_MEMBER, m, purpose="customer_support", fields="phone"
        )

    report = history.report()
    found = {(f["kind"], f["principal"]): f for f in report["findings"]}
    assert set(found) == {
        ("bulk_read", "agent-7"),
        ("after_hours", "agent-8"),
        ("no_business_event", "agent-9"),
        ("unserved_member", "pos-other"),
        ("repeated_denials", "probe-1"),
    }, sorted(found)
    bulk = found[("bulk_read", "agent-7")]
    assert bulk["severity"] == "high" and bulk["evidence"]["count"] == 200
    assert len(bulk["evidence"]["sequences"]) == 50  # capped; the count is exact
    assert found[("after_hours", "agent-8")]["evidence"]["count"] == 3
    assert found[("unserved_member", "pos-other")]["evidence"]["count"] == 4
    assert found[("repeated_denials", "probe-1")]["evidence"]["count"] == 6
    # the evidence names real access-log records of that principal
    import sqlalchemy as sa

    from ledger.storage.schema import access_log

    with history.db.reader.connect() as conn:
        for f in report["findings"]:
            rows = conn.execute(
                sa.select(access_log.c.principal).where(
                    access_log.c.seq.in_(f["evidence"]["sequences"])
                )
            ).scalars()
            assert set(rows) == {f["principal"]}, f["id"]
            assert f["proof"]["leaf_index"] == min(f["evidence"]["sequences"]) - 1
            assert f["proof"]["log"] == "loyalty-ledger.test/access"
