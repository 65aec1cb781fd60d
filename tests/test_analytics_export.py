"""The de-identified analytics export (ledger/reports/analytics.py) over a
real server: members enrolled, buying and redeeming over gRPC, one erased,
two whose data no longer decrypts; then the export is attacked: k-anonymity
of every written group, no direct identifier anywhere in the bytes, rare
members not singled out, pseudonyms unlinkable across exports unless a link
key is configured. All personal data here is obviously fake."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from ledger.reports.analytics import (
    AGE_BANDS,
    COLUMNS,
    FREQUENCY_BANDS,
    MONETARY_BANDS,
    RECENCY_BANDS,
    REDEMPTION_BANDS,
    ExportSummary,
    age_band,
    export_analytics,
    monetary_band,
    recency_band,
    redemption_band,
    region,
    summary_json,
)
from ledger.storage.schema import member_fields, member_keys
from tests.conftest import ctx, key
from tests.support.program import DAY_US, START, ProgramServer

K = 10
LINK_KEY = bytes(range(32))  # a configured link key (test value)
TODAY = START.date()  # 2026-01-15, the test clock


@dataclass
class Person:
    account: str
    name: str
    phone: str  # as entered
    e164: str
    email: str
    birth_date: str
    address: str
    age: int | None  # what an adversary may know exactly
    country: str
    tier: str
    erased: bool = False
    unreadable: bool = False
    rare: bool = False

    @property
    def group(self) -> tuple[str, str, str]:
        """The quasi-identifiers an adversary derives from what they know."""
        if self.age is None:
            band = "unknown"
        elif self.age >= 80:
            band = "80+"
        else:
            band = f"{self.age // 10 * 10}-{self.age // 10 * 10 + 9}"
        return band, self.country, self.tier


class Seeded:
    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.ps = ProgramServer(db_url, tmp_path)
        self.members = members_pb2_grpc.MemberServiceStub(self.ps.channel)
        self.people: list[Person] = []
        self._n = 0

    def close(self) -> None:
        self.ps.close()

    def enroll(
        self,
        birth_date: str,
        *,
        tier: str,
        phone: str | None = None,
        country: str = "CN",
        **flags: bool,
    ) -> Person:
        self._n += 1
        n = self._n
        phone = phone or f"+86 138 0013 {8000 + n:04d}"
        e164 = "+" + "".join(c for c in phone if c.isdigit())
        name = f"Test Person {n}"
        email = f"Test.Person.{n}@Example.invalid"
        address = f"{n} Test Road, Testville"
        account = self.members.Enroll(
            mpb.EnrollRequest(
                idempotency_key=key("enroll"),
                context=ctx(),
                profile=mpb.Profile(
                    name=name,
                    phone=phone,
                    email=email,
                    birth_date=birth_date,
                    postal_address=address,
                ),
            )
        ).member_account_id
        age = None
        if birth_date:
            born = dt.date.fromisoformat(birth_date)
            age = TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))
        person = Person(
            account, name, phone, e164, email, birth_date, address, age, country, tier, **flags
        )
        self.people.append(person)
        return person

    def buy(self, person: Person, minor: int, channel: str = "pos-test") -> None:
        self.ps.earn(
            person.account,
            0,
            purchase=pb.Money(minor_units=minor, currency_code="EUR"),
            categories=["grocery"],
            channel=channel,
        )

    def erase(self, person: Person) -> None:
        self.members.EraseMember(
            mpb.EraseMemberRequest(
                idempotency_key=key("erase"),
                member_account_id=person.account,
                reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
            )
        )
        person.erased = True

    def export(self, **kw: object) -> tuple[str, ExportSummary]:
        server = self.ps.server
        assert server.db is not None and server.vault is not None
        out = io.StringIO()
        summary = export_analytics(
            server.db,
            server.vault,
            out,
            k=int(kw.pop("k", K)),  # type: ignore[call-overload]
            now_us=self.ps.clock.now_us,
            **kw,  # type: ignore[arg-type]
        )
        return out.getvalue(), summary


def _seed(s: Seeded) -> None:
    # common profiles: three groups of at least k
    group_a = [s.enroll(f"1990-{m % 12 + 1:02d}-11", tier="trial") for m in range(25)]
    group_b = [s.enroll(f"1980-{m % 12 + 1:02d}-07", tier="trial") for m in range(20)]
    group_c = [s.enroll(f"1995-{m % 12 + 1:02d}-21", tier="none") for m in range(12)]
    # rare ones: each alone in its group
    rare = [
        s.enroll("1935-06-01", tier="trial", rare=True),  # aged 90
        s.enroll("1990-05-05", tier="trial", phone="+44 20 7946 0123", country="GB", rare=True),
        s.enroll("1990-06-06", tier="grower", rare=True),  # the only grower
        s.enroll("", tier="trial", rare=True),  # no birth date
    ]
    erased = s.enroll("1990-03-11", tier="trial")  # would be in group A

    for i, p in enumerate(group_a):
        s.buy(p, 2_000 + 500 * i)
        if i % 3 == 0:
            s.buy(p, 4_000, channel="app-test")
            s.buy(p, 6_000, channel="app-test")
        if i % 4 == 0:
            s.ps.redeem(p.account, 15)
    for i, p in enumerate(group_b):
        s.buy(p, 30_000 + 100 * i, channel="app-test")
        if i % 2 == 0:
            s.ps.redeem(p.account, 250)
    for i, p in enumerate(group_c[:6]):
        s.ps.earn(p.account, 50)  # points without a purchase: tier stays "none"
        if i % 2:
            s.ps.redeem(p.account, 40)
    for p in rare:
        s.buy(p, 150_000 if p.tier == "grower" else 5_000)
    s.buy(erased, 5_000)
    s.erase(erased)

    s.ps.clock.advance(60 * DAY_US)  # some members come back, the others fall behind
    for p in group_a[::2]:
        s.buy(p, 1_500)

    # one member without a data key, one whose birth date no longer opens
    db = s.ps.server.db
    assert db is not None
    broken_key, broken_field = group_a[1], group_b[1]
    with db.writer.begin() as conn:
        conn.execute(sa.delete(member_keys).where(member_keys.c.account_id == broken_key.account))
        where = (member_fields.c.account_id == broken_field.account) & (
            member_fields.c.field == "birth_date"
        )
        blob = bytes(conn.execute(sa.select(member_fields.c.ciphertext).where(where)).scalar_one())
        conn.execute(
            sa.update(member_fields)
            .where(where)
            .values(ciphertext=blob[:-1] + bytes([blob[-1] ^ 1]))
        )
    broken_key.unreadable = broken_field.unreadable = True


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:
    s = Seeded(db_url, tmp_path)
    try:
        _seed(s)
        yield s
    finally:
        s.close()


def _rows(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    assert tuple(next(reader)) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in reader]


def _qi(row: dict[str, str]) -> tuple[str, str, str]:
    return row["age_band"], row["region"], row["tier"]


def _pseudonym(link_key: bytes, account: str) -> str:
    return hmac.new(link_key, account.encode(), hashlib.sha256).hexdigest()[:32]


def test_export_is_k_anonymous_and_holds_no_identifier(seeded: Seeded) -> None:
    text, summary = seeded.export()
    rows = _rows(text)
    people = seeded.people
    present = [p for p in people if not p.erased]
    kept = [p for p in present if not (p.rare or p.unreadable)]

    # counts: rare and unreadable members suppressed, the erased one never read
    assert summary.members_seen == len(present) == 61
    assert summary.rows_written == len(rows) == len(kept) == 55
    assert summary.rows_suppressed == 6 and summary.unreadable == 2
    assert (summary.k, summary.groups, summary.groups_suppressed) == (K, 3, 4)
    assert summary.linkable is False

    # every written group has at least k rows
    groups = Counter(_qi(r) for r in rows)
    assert all(n >= K for n in groups.values()), groups
    assert groups == {
        ("30-39", "CN", "trial"): 24,
        ("40-49", "CN", "trial"): 19,
        ("30-39", "CN", "none"): 12,
    }

    # only generalized values: bands, a country, a tier, a channel id, a pseudonym
    for r in rows:
        assert len(r["pseudonym"]) == 32 and int(r["pseudonym"], 16) >= 0
        assert r["age_band"] in AGE_BANDS
        assert r["recency_band"] in RECENCY_BANDS
        assert r["frequency_band"] in FREQUENCY_BANDS
        assert r["monetary_band"] in MONETARY_BANDS
        assert r["redemption_rate_band"] in REDEMPTION_BANDS
        assert r["main_channel"] in ("pos-test", "app-test", "none")
    assert [r["pseudonym"] for r in rows] == sorted(r["pseudonym"] for r in rows)
    assert {r["recency_band"] for r in rows} == {"0-30", "31-90", "none"}
    assert {r["main_channel"] for r in rows} == {"pos-test", "app-test", "none"}
    assert {r["redemption_rate_band"] for r in rows} >= {"0", "0-25%", "50-100%"}

    # no direct identifier of anyone seeded, in any form, in the CSV or the summary
    blob = (text + summary_json(summary)).encode()
    for p in people:
        national = p.e164.removeprefix("+86").removeprefix("+44")
        for value in (
            p.account,
            p.account.removeprefix("mbr_"),
            p.name,
            p.phone,
            p.e164,
            national,
            p.email,
            p.email.lower(),
            p.address,
        ):
            assert value.encode() not in blob, "identifier leaked"
        if p.birth_date:
            assert p.birth_date.encode() not in blob
            assert p.birth_date.replace("-", "").encode() not in blob

    # aggregates: over the written rows only
    assert sum(summary.by_tier.values()) == summary.rows_written
    assert summary.by_tier["trial"] == 43 and summary.by_tier["none"] == 12
    assert summary.by_tier["grower"] == 0  # the one grower was suppressed
    for counts in (
        summary.by_main_channel,
        summary.by_recency,
        summary.by_frequency,
        summary.by_monetary,
        summary.by_redemption_rate,
    ):
        assert sum(counts.values()) == summary.rows_written
    assert summary.by_main_channel == dict(sorted(Counter(r["main_channel"] for r in rows).items()))
    assert summary.redemption_rate is not None and 0 < summary.redemption_rate < 1
    assert json.loads(summary_json(summary))["rows_written"] == 55


def test_linkage_attack_cannot_single_out_anyone(seeded: Seeded) -> None:
    text, _ = seeded.export(link_key=LINK_KEY)
    rows = _rows(text)
    by_group = Counter(_qi(r) for r in rows)
    for p in seeded.people:
        if p.erased:
            continue
        # the adversary knows the exact age, the phone's country and the tier
        matches = by_group[p.group]
        assert matches == 0 or matches >= K, (p.group, matches)
        if p.rare:
            assert matches == 0
            # knowing the rest as well (channel, bands) still finds nothing
            assert not [r for r in rows if _qi(r) == p.group]
    # the rare combinations exist in the database but not in the export
    assert {p.group for p in seeded.people if p.rare}.isdisjoint(by_group)

    # which members were written: exactly the readable ones of large groups
    written = {r["pseudonym"] for r in rows}
    for p in seeded.people:
        expected = not (p.erased or p.rare or p.unreadable)
        assert (_pseudonym(LINK_KEY, p.account) in written) is expected, p.name


def test_pseudonyms_link_only_with_a_link_key(seeded: Seeded) -> None:
    first, s1 = seeded.export()
    second, s2 = seeded.export()
    a = {r["pseudonym"] for r in _rows(first)}
    b = {r["pseudonym"] for r in _rows(second)}
    assert len(a) == len(b) == 55 and a.isdisjoint(b)
    assert not s1.linkable and not s2.linkable
    # without the key, the rows are the same data in an unrelated order
    strip = sorted(tuple(r[c] for c in COLUMNS[1:]) for r in _rows(first))
    assert strip == sorted(tuple(r[c] for c in COLUMNS[1:]) for r in _rows(second))

    linked_1, l1 = seeded.export(link_key=LINK_KEY)
    linked_2, l2 = seeded.export(link_key=LINK_KEY)
    assert linked_1 == linked_2 and l1 == l2 and l1.linkable
    assert {r["pseudonym"] for r in _rows(linked_1)}.isdisjoint(a | b)
    other, _ = seeded.export(link_key=bytes(range(1, 33)))
    assert {r["pseudonym"] for r in _rows(other)}.isdisjoint(
        r["pseudonym"] for r in _rows(linked_1)
    )

    # a member erased later leaves the next export
    target = next(p for p in seeded.people if p.group == ("30-39", "CN", "none"))
    seeded.erase(target)
    after, summary = seeded.export(link_key=LINK_KEY)
    assert _pseudonym(LINK_KEY, target.account) in linked_1
    assert _pseudonym(LINK_KEY, target.account) not in after
    assert summary.members_seen == 60 and summary.rows_written == 54


def test_parameters_are_validated(seeded: Seeded) -> None:
    for k in (1, 0, -5):
        with pytest.raises(ValueError, match="k: must be an integer of at least 2"):
            seeded.export(k=k)
    with pytest.raises(ValueError, match="link_key: must be at least 32 bytes"):
        seeded.export(link_key=b"short")
    # a k larger than every group writes the header alone
    text, summary = seeded.export(k=100)
    assert text == ",".join(COLUMNS) + "\n"
    assert summary.rows_written == 0 and summary.rows_suppressed == 61
    assert summary.redemption_rate is None and summary.groups == 0


def test_bands() -> None:
    today = dt.date(2026, 1, 15)
    assert age_band("1990-01-15", today) == "30-39"  # 36 on the day
    assert age_band("1996-01-16", today) == "20-29"  # 29 until tomorrow
    assert age_band("1946-01-15", today) == "80+"
    assert age_band("1946-01-16", today) == "70-79"
    assert age_band(None, today) == age_band("", today) == age_band("bad", today) == "unknown"
    assert age_band("2027-01-01", today) == "unknown"
    assert region("+8613800138000", "CN") == "CN"
    assert region("13800138000", "CN") == "CN"  # national form, default region
    assert region("+442079460123", "CN") == "GB"
    assert region("+80012345678", "CN") == "unknown"  # non-geographic
    assert region("", "CN") == region("not a number", "CN") == "unknown"
    now = 400 * DAY_US
    assert recency_band(now - 30 * DAY_US, now) == "0-30"
    assert recency_band(now - 31 * DAY_US, now) == "31-90"
    assert recency_band(now - 365 * DAY_US, now) == "91-365"
    assert recency_band(now - 366 * DAY_US, now) == "365+"
    assert recency_band(now + DAY_US, now) == "0-30"
    assert recency_band(None, now) == "none"
    assert [monetary_band(m, 100) for m in (0, 1, 9_999, 10_000, 999_999, 1_000_000)] == [
        "0",
        "1-99",
        "1-99",
        "100-999",
        "1000-9999",
        "10000+",
    ]
    assert [redemption_band(e, r) for e, r in ((0, 0), (100, 0), (100, 10), (100, 25))] == [
        "0",
        "0",
        "0-25%",
        "25-50%",
    ]
    assert redemption_band(100, 50) == redemption_band(100, 500) == "50-100%"
    assert redemption_band(0, 10) == "50-100%"  # redeemed what was transferred in


def test_chunks_and_spilled_buckets_give_the_same_export(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.reports.analytics as analytics

    whole, summary = seeded.export(link_key=LINK_KEY)
    monkeypatch.setattr(analytics, "CHUNK", 4)  # 16 read transactions
    monkeypatch.setattr(analytics, "_BUCKET_ROWS", 7)  # 9 buckets
    monkeypatch.setattr(analytics, "_SPOOL_BYTES", 900)  # each spills to disk
    pieces, again = seeded.export(link_key=LINK_KEY)
    assert pieces == whole and again == summary
    rows = _rows(pieces)
    assert [r["pseudonym"] for r in rows] == sorted(r["pseudonym"] for r in rows)
