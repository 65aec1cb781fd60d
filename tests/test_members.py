"""Members over the wire: enroll, purpose-bound reads with projection and
masking, lookup by phone/e-mail, update, erasure (crypto-shredding), and
break-glass. A real token-authenticated server on a real database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.access.v1 import access_pb2 as apb
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.members.v1 import members_pb2 as mpb

from access.principal import Role
from ledger.verify import verify_database
from tests.conftest import ctx, key
from tests.test_auth_matrix import Secured

PHONE = "+86 138 0013 8000"  # obviously fake test data
EMAIL = "Test.Person@Example.invalid"
PROFILE = mpb.Profile(
    name="Test Person",
    phone=PHONE,
    email=EMAIL,
    birth_date="1990-01-31",
    postal_address="1 Test Road, Testville",
)


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset_us = 0

    def __call__(self) -> int:
        return time.time_ns() // 1000 + self.offset_us


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def secured(db_url: str, tmp_path: Path, clock: Clock) -> Iterator[Secured]:
    s = Secured(db_url, tmp_path, clock=clock)
    yield s
    s.close()


def md(s: Secured, role: Role, subject: str | None = None, channel: str | None = None) -> tuple:
    token = s.issuer.issue(
        subject=subject or f"{role.value}-1",
        role=role,
        ttl_seconds=7200,
        channel=channel or ("pos-test" if role is Role.CHANNEL else None),
    ).token
    return (("authorization", f"Bearer {token}"),)


def enroll(s: Secured, profile: mpb.Profile = PROFILE, idem: str | None = None) -> str:
    return s.members.Enroll(
        mpb.EnrollRequest(idempotency_key=idem or key("enroll"), context=ctx(), profile=profile),
        metadata=md(s, Role.CHANNEL),
    ).member_account_id


def get(s: Secured, account: str, purpose: str, role: Role = Role.MEMBER_SERVICE, **kw: str):  # type: ignore[no-untyped-def]
    return s.members.GetMember(
        mpb.GetMemberRequest(member_account_id=account, purpose=purpose),
        metadata=md(s, role, **kw),
    )


def code_of(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    try:
        call()
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def decisions(s: Secured, where: str = "1=1", want: int = 1) -> list[sa.Row]:
    """Rows of the access log matching ``where``, once at least ``want`` of
    them are there (a call's record is durable before its answer; only the
    server's own events, such as a break-glass expiry, come later)."""
    assert s.server.db is not None
    deadline = time.monotonic() + 5
    while True:
        with s.server.db.reader.connect() as conn:
            rows = list(
                conn.execute(
                    sa.text(
                        "SELECT principal, role, method, decision, reason, purpose,"
                        f" member_account_id, fields FROM access_log WHERE {where}"
                        " ORDER BY seq"
                    )
                )
            )
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_enroll_and_read_for_each_purpose(secured: Secured) -> None:
    account = enroll(secured)
    full = get(secured, account, "legal_request")
    assert full.profile.name == "Test Person"
    assert full.profile.phone == "+8613800138000"  # stored normalized (E.164)
    assert full.profile.email == "test.person@example.invalid"
    assert full.profile.birth_date == "1990-01-31"
    assert list(full.masked_fields) == [] and list(full.withheld_fields) == []

    support = get(secured, account, "customer_support")
    assert support.profile.name == "Test Person"
    assert support.profile.phone == "*********8000"
    assert support.profile.email == "t***@example.invalid"
    assert support.profile.birth_date == "" and support.profile.postal_address == ""
    assert sorted(support.masked_fields) == ["email", "phone"]
    assert sorted(support.withheld_fields) == ["birth_date", "postal_address"]

    delivery = get(secured, account, "redemption_delivery")
    assert delivery.profile.postal_address == "1 Test Road, Testville"
    assert delivery.profile.email == ""

    fraud = get(secured, account, "fraud_investigation", Role.SECURITY)
    assert fraud.profile.birth_date == "1990-**-**"

    rows = decisions(secured, "method LIKE '%GetMember' AND purpose = 'customer_support'")
    assert [(r.decision, r.member_account_id, r.fields) for r in rows] == [
        ("allow", account, "email,name,phone")
    ]


def test_purpose_rules(secured: Secured) -> None:
    account = enroll(secured)
    cases = {
        "": (grpc.StatusCode.PERMISSION_DENIED, "needs a declared purpose"),
        "marketing": (grpc.StatusCode.INVALID_ARGUMENT, "purpose: unknown purpose"),
        "break_glass": (grpc.StatusCode.PERMISSION_DENIED, "needs an active break-glass grant"),
    }
    for purpose, (want, text) in cases.items():
        code, details = code_of(lambda p=purpose: get(secured, account, p))
        assert (code, text in details) == (want, True), (purpose, details)
    # security may investigate fraud, but not answer support calls
    code, details = code_of(lambda: get(secured, account, "customer_support", Role.SECURITY))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "role security may not declare purpose customer_support" in details
    denied = decisions(secured, "decision = 'deny' AND method LIKE '%GetMember'", want=4)
    assert len(denied) == 4 and all(r.fields == "" for r in denied)


def test_channel_never_reads_personal_data(secured: Secured) -> None:
    account = enroll(secured)
    code, details = code_of(lambda: get(secured, account, "legal_request", Role.CHANNEL))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "channel may not call" in details
    found = secured.members.FindMember(
        mpb.FindMemberRequest(phone="13800138000"), metadata=md(secured, Role.CHANNEL)
    )
    assert list(found.member_account_ids) == [account]  # an id, nothing personal


def test_find_member(secured: Secured) -> None:
    a = enroll(secured)
    b = enroll(secured, mpb.Profile(phone="+86 139 0013 9000"))
    pos = md(secured, Role.CHANNEL)
    by_phone = secured.members.FindMember(
        mpb.FindMemberRequest(phone="139 0013 9000"), metadata=pos
    )
    assert list(by_phone.member_account_ids) == [b]
    by_email = secured.members.FindMember(
        mpb.FindMemberRequest(email="TEST.PERSON@example.invalid"), metadata=pos
    )
    assert list(by_email.member_account_ids) == [a]
    nobody = secured.members.FindMember(mpb.FindMemberRequest(phone="13700137000"), metadata=pos)
    assert list(nobody.member_account_ids) == []
    code, details = code_of(
        lambda: secured.members.FindMember(mpb.FindMemberRequest(phone="12345"), metadata=pos)
    )
    assert (
        code == grpc.StatusCode.INVALID_ARGUMENT and "phone: is not a valid phone number" in details
    )
    assert "12345" not in details


def test_bad_profiles_are_refused_without_echo(secured: Secured) -> None:
    seq_before = _count(secured, "accounts")
    cases = [
        (mpb.Profile(name="Test Only"), "profile: needs a phone or an e-mail"),
        (mpb.Profile(phone="+86 12"), "profile.phone: is not a valid phone number"),
        (mpb.Profile(email="not-an-address"), "profile.email: is not a valid e-mail address"),
        (mpb.Profile(email="a@b.invalid", birth_date="31/01/1990"), "profile.birth_date"),
        (mpb.Profile(email="a@b.invalid", birth_date="2999-01-01"), "profile.birth_date"),
        (mpb.Profile(email="a@b.invalid", name="x" * 201), "profile.name: must be 1..200"),
        (
            mpb.Profile(email="a@b.invalid", custom={"occupation": "tester"}),
            "profile.custom.occupation: is not a member field this program collects",
        ),
    ]
    for profile, text in cases:
        code, details = code_of(lambda p=profile: enroll(secured, p))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (text, details)
        assert text in details
        for value in ("+86 12", "not-an-address", "31/01/1990", "tester"):
            assert value not in details
    big = mpb.Profile(email="a@b.invalid", name="x" * (10 * 1024 * 1024))
    code, _ = code_of(lambda: enroll(secured, big))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _count(secured, "accounts") == seq_before
    assert _count(secured, "member_fields") == 0


def test_update_member(secured: Secured) -> None:
    account = enroll(secured)
    staff = md(secured, Role.MEMBER_SERVICE)
    secured.members.UpdateMember(
        mpb.UpdateMemberRequest(
            member_account_id=account,
            profile=mpb.Profile(phone="+86 137 0013 7000"),
            fields=["phone", "postal_address"],
        ),
        metadata=staff,
    )
    pos = md(secured, Role.CHANNEL)
    old = secured.members.FindMember(mpb.FindMemberRequest(phone=PHONE), metadata=pos)
    new = secured.members.FindMember(mpb.FindMemberRequest(phone="13700137000"), metadata=pos)
    assert list(old.member_account_ids) == [] and list(new.member_account_ids) == [account]
    after = get(secured, account, "legal_request")
    assert after.profile.phone == "+8613700137000" and after.profile.postal_address == ""
    # minimization: a value the update does not name is refused
    code, details = code_of(
        lambda: secured.members.UpdateMember(
            mpb.UpdateMemberRequest(
                member_account_id=account, profile=mpb.Profile(name="Test X"), fields=["email"]
            ),
            metadata=staff,
        )
    )
    assert (
        code == grpc.StatusCode.INVALID_ARGUMENT and "profile.name: is set but not named" in details
    )


def test_erasure_keeps_every_hash_valid(secured: Secured) -> None:
    account = enroll(secured)
    other = enroll(secured, mpb.Profile(email="other@example.invalid"))
    pos = md(secured, Role.CHANNEL)
    earned = secured.stub.Earn(
        pb.EarnRequest(
            idempotency_key=key(),
            context=ctx(store_id="store-0042", external="ORD-TEST-0001"),
            member_account_id=account,
            points=70,
        ),
        metadata=pos,
    )
    staff = md(secured, Role.MEMBER_SERVICE)
    readable = secured.stub.GetEntry(
        pb.GetEntryRequest(sequence=earned.entry.sequence, purpose="customer_support"),
        metadata=staff,
    ).entry
    assert readable.external_transaction_id == "ORD-TEST-0001"
    custodian = md(secured, Role.KEY_CUSTODIAN)
    request = mpb.EraseMemberRequest(
        idempotency_key=key("erase"),
        member_account_id=account,
        reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
    )
    erased = secured.members.EraseMember(request, metadata=custodian)
    assert erased.forfeited_points == 70 and erased.erasure_sequence > earned.entry.sequence
    assert secured.members.EraseMember(request, metadata=custodian) == erased  # replay

    code, details = code_of(lambda: get(secured, account, "legal_request"))
    assert code == grpc.StatusCode.NOT_FOUND and "erased" in details
    found = secured.members.FindMember(mpb.FindMemberRequest(phone=PHONE), metadata=pos)
    assert list(found.member_account_ids) == []
    code, details = code_of(
        lambda: secured.stub.Earn(
            pb.EarnRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, points=1
            ),
            metadata=pos,
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "erased" in details
    code, _ = code_of(
        lambda: secured.stub.Reverse(
            pb.ReverseRequest(
                idempotency_key=key(),
                context=ctx(),
                original_sequence=earned.entry.sequence,
                member_account_id=account,
            ),
            metadata=pos,
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    balance = secured.stub.GetBalance(
        pb.GetBalanceRequest(member_account_id=account), metadata=pos
    ).balance
    assert balance.points == 0
    assert secured.server.db is not None
    for table in ("member_keys", "member_fields", "member_lookup"):
        assert _count(secured, table, f"account_id = '{account}'") == 0
    assert _count(secured, "member_erasures") == 1
    result = verify_database(secured.server.db)
    assert result, [str(p) for p in result.problems]
    # the old entry's details are unreadable now; its hash is unchanged
    after = secured.stub.GetEntry(
        pb.GetEntryRequest(sequence=earned.entry.sequence, purpose="customer_support"),
        metadata=staff,
    ).entry
    assert after.details_withheld and after.external_transaction_id == ""
    assert after.hash == readable.hash and after.details == readable.details
    assert get(secured, other, "legal_request").profile.email == "other@example.invalid"


def test_break_glass(secured: Secured, clock: Clock) -> None:
    account = enroll(secured)
    admin = md(secured, Role.ADMIN, subject="admin-7")
    analyst = ("analyst-9", Role.ANALYST)
    code, _ = code_of(lambda: get(secured, account, "break_glass", analyst[1], subject=analyst[0]))
    assert code == grpc.StatusCode.PERMISSION_DENIED

    bad = [
        (
            apb.GrantBreakGlassRequest(
                grantee="admin-7", reason="need it for a test", duration_seconds=600
            ),
            "themself",
        ),
        (
            apb.GrantBreakGlassRequest(grantee="analyst-9", reason="", duration_seconds=600),
            "reason: is mandatory",
        ),
        (
            apb.GrantBreakGlassRequest(
                grantee="analyst-9", reason="outage T-42 on call", duration_seconds=86400
            ),
            "duration_seconds",
        ),
        (
            apb.GrantBreakGlassRequest(
                grantee="analyst-9", reason="call test@example.invalid now", duration_seconds=600
            ),
            "reason",
        ),
    ]
    for request, text in bad:
        code, details = code_of(lambda r=request: secured.access.GrantBreakGlass(r, metadata=admin))
        assert code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
        assert text in details and "test@example.invalid" not in details

    grant = secured.access.GrantBreakGlass(
        apb.GrantBreakGlassRequest(
            grantee="analyst-9", reason="outage T-42 on call", duration_seconds=600
        ),
        metadata=admin,
    )
    read = get(secured, account, "break_glass", analyst[1], subject=analyst[0])
    assert read.profile.phone == "+8613800138000"
    code, details = code_of(
        lambda: get(secured, account, "legal_request", analyst[1], subject=analyst[0])
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "must be break_glass" in details
    # another analyst is not elevated by this grant
    code, _ = code_of(
        lambda: get(secured, account, "break_glass", Role.ANALYST, subject="analyst-2")
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED

    ended = secured.access.EndBreakGlass(
        apb.EndBreakGlassRequest(grant_id=grant.grant_id),
        metadata=md(secured, Role.ANALYST, subject="analyst-9"),
    )
    assert ended.ended_by == "analyst-9" and ended.HasField("ended")
    code, _ = code_of(lambda: get(secured, account, "break_glass", analyst[1], subject=analyst[0]))
    assert code == grpc.StatusCode.PERMISSION_DENIED

    # a second grant runs out: its end is recorded by the server on its own
    second = secured.access.GrantBreakGlass(
        apb.GrantBreakGlassRequest(
            grantee="analyst-9", reason="outage T-43 on call", duration_seconds=60
        ),
        metadata=admin,
    )
    clock.offset_us += 61 * 1_000_000
    code, _ = code_of(lambda: get(secured, account, "break_glass", analyst[1], subject=analyst[0]))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    events = decisions(secured, "method = 'break-glass'", want=4)
    assert [(e.decision, e.principal) for e in events] == [
        ("start", "analyst-9"),
        ("end", "analyst-9"),
        ("start", "analyst-9"),
        ("end", "analyst-9"),
    ]
    assert second.grant_id in events[3].reason and "expiry" in events[3].reason
    reads = decisions(
        secured, "purpose = 'break_glass' AND decision = 'allow' AND method LIKE '%GetMember'"
    )
    assert len(reads) == 1 and grant.grant_id in reads[0].reason
    assert "phone" in reads[0].fields.split(",")
    listed = secured.access.ListBreakGlass(
        apb.ListBreakGlassRequest(), metadata=md(secured, Role.SECURITY)
    )
    assert [g.grant_id for g in listed.grants] == [second.grant_id, grant.grant_id]
    assert listed.grants[0].ended_by == "expiry"


def _count(s: Secured, table: str, where: str = "1=1") -> int:
    assert s.server.db is not None
    with s.server.db.reader.connect() as conn:
        return int(
            conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}")).scalar_one()
        )


def test_one_member_per_phone_and_email(secured: Secured) -> None:
    account = enroll(secured)
    for profile, field in (
        (mpb.Profile(phone="13800138000"), "phone"),  # the same number, written otherwise
        (mpb.Profile(email="TEST.PERSON@example.invalid"), "email"),
    ):
        code, details = code_of(lambda p=profile: enroll(secured, p))
        assert code == grpc.StatusCode.ALREADY_EXISTS and f"profile.{field}:" in details
    other = enroll(secured, mpb.Profile(email="other@example.invalid"))
    code, details = code_of(
        lambda: secured.members.UpdateMember(
            mpb.UpdateMemberRequest(
                member_account_id=other, profile=mpb.Profile(phone=PHONE), fields=["phone"]
            ),
            metadata=md(secured, Role.MEMBER_SERVICE),
        )
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert get(secured, account, "legal_request").profile.phone == "+8613800138000"


def test_enroll_replay_with_another_person_is_a_conflict(secured: Secured) -> None:
    idem = key("enroll")
    first = enroll(secured, mpb.Profile(email="first@example.invalid"), idem=idem)
    assert enroll(secured, mpb.Profile(email="first@example.invalid"), idem=idem) == first
    code, _ = code_of(
        lambda: enroll(secured, mpb.Profile(email="second@example.invalid"), idem=idem)
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS


def test_staff_keys_live_apart_from_channels(secured: Secured) -> None:
    staff = md(secured, Role.MEMBER_SERVICE)
    request = mpb.EnrollRequest(
        idempotency_key=key(), context=ctx(), profile=mpb.Profile(email="staff1@example.invalid")
    )
    code, details = code_of(lambda: secured.members.Enroll(request, metadata=staff))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "staff act in channel 'staff'" in details
    request.context.channel_id = "staff"
    assert secured.members.Enroll(request, metadata=staff).member_account_id
    request.context.channel_id = "erasure"
    code, details = code_of(lambda: secured.members.Enroll(request, metadata=staff))
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)


def test_find_member_is_rate_limited(secured: Secured) -> None:
    pos = md(secured, Role.CHANNEL, subject="pos-sweeper")
    codes = []
    for i in range(40):
        codes.append(
            code_of(
                lambda i=i: secured.members.FindMember(
                    mpb.FindMemberRequest(phone=f"1390000{i:04d}"), metadata=pos
                )
            )[0]
        )
    assert codes[:30] == [grpc.StatusCode.OK] * 30  # the burst
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[30:]
