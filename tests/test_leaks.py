"""No plaintext personal data at rest or in logs.

Enrolls members with distinctive fake personal data, drives every RPC
(including invalid requests that carry personal values), then scans the raw
database (SQLite file bytes, WAL included; a pg_dump of PostgreSQL, where
bytea appears hex-encoded, so both forms are searched) and the server's
whole log output (debug level): not one occurrence may be found.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from loyalty.access.v1 import access_pb2 as apb
from loyalty.access.v1 import access_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from tests.conftest import ctx, key
from tests.support.process import ServeProcess

MEMBERS = 24


def person(i: int) -> dict[str, str]:
    """Distinctive, obviously fake personal data for member ``i``."""
    return {
        "name": f"Leakcheck Testperson{i:04d}",
        "phone": f"1391234{i:04d}",
        "email": f"leak.needle{i:04d}@example.invalid",
        "birth_date": f"1911-11-{1 + i % 28:02d}",
        "postal_address": f"{i} Leakcheck Road, Testville",
    }


def needles(i: int) -> list[str]:
    p = person(i)
    return [
        p["name"],
        p["phone"],  # national form
        "+86" + p["phone"],  # E.164, as stored before encryption
        p["email"],
        p["postal_address"],
        f"ORD-LEAKCHECK-{i:04d}",  # order details: encrypted in the journal
    ]


@pytest.mark.slow
def test_no_plaintext_personal_data_anywhere(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data_dir = tmp_path / "data"
    issuer = TokenIssuer(load_or_create_signing_key(data_dir / "keys" / "token-signing.pem"))

    def md(role: Role, subject: str = "") -> tuple[tuple[str, str]]:
        token = issuer.issue(
            subject=subject or f"{role.value}-1",
            role=role,
            ttl_seconds=600,
            channel="pos-test" if role is Role.CHANNEL else None,
        ).token
        return (("authorization", f"Bearer {token}"),)

    proc = ServeProcess(
        data_dir=data_dir,
        database_url=db_url,
        log_path=tmp_path / "serve.log",
        env={"LOYALTY_LEDGER_AUTH": "tokens", "LOYALTY_LEDGER_LOG_LEVEL": "debug"},
    )
    try:
        proc.wait_serving()
        with grpc.insecure_channel(proc.address) as channel:
            _drive(
                members_pb2_grpc.MemberServiceStub(channel),
                ledger_pb2_grpc.LedgerServiceStub(channel),
                access_pb2_grpc.AccessServiceStub(channel),
                md,
            )
    finally:
        assert proc.terminate() == 0
    haystacks = {"log": (tmp_path / "serve.log").read_bytes()}
    if db_url.startswith("sqlite"):
        db_file = Path(db_url.removeprefix("sqlite:///"))
        for path in db_file.parent.glob(db_file.name + "*"):  # the file, its WAL and shm
            haystacks[path.name] = path.read_bytes()
    else:
        haystacks["pg_dump"] = _pg_dump(db_url, request)
    # positive control: what is stored in clear (channel ids) is found, so
    # the scan reads the real bytes
    stored = [h for where, h in haystacks.items() if where != "log"]
    assert any(b"pos-test" in h for h in stored)
    found = [
        f"{where}: member {i}"
        for where, data in haystacks.items()
        for i in range(MEMBERS)
        for needle in needles(i)
        if needle.encode() in data or needle.encode().hex().encode() in data
    ]
    assert found == []


def _drive(members, ledger, access, md) -> None:  # type: ignore[no-untyped-def]
    pos, staff = md(Role.CHANNEL), md(Role.MEMBER_SERVICE)
    accounts = []
    for i in range(MEMBERS):
        profile = mpb.Profile(**person(i))
        accounts.append(
            members.Enroll(
                mpb.EnrollRequest(idempotency_key=key(), context=ctx(), profile=profile),
                metadata=pos,
            ).member_account_id
        )
    for i, account in enumerate(accounts):
        p = person(i)
        assert members.FindMember(mpb.FindMemberRequest(phone=p["phone"]), metadata=pos)
        assert members.FindMember(mpb.FindMemberRequest(email=p["email"]), metadata=staff)
        earned = ledger.Earn(
            pb.EarnRequest(
                idempotency_key=key(),
                context=ctx(store_id="store-0001", external=f"ORD-LEAKCHECK-{i:04d}"),
                member_account_id=account,
                points=50,
                purchase=pb.Money(minor_units=1999, currency_code="EUR"),
            ),
            metadata=pos,
        )
        # a till that uses the member's phone number as the idempotency key
        # and as the request id (both end up in append-only tables)
        ledger.Redeem(
            pb.RedeemRequest(
                idempotency_key=f"{p['phone']}-redeem",
                context=ctx(),
                member_account_id=account,
                points=10,
            ),
            metadata=(*pos, ("x-request-id", p["phone"])),
        )
        ledger.Reverse(
            pb.ReverseRequest(
                idempotency_key=key(),
                context=ctx(),
                original_sequence=earned.entry.sequence,
                points=5,
                member_account_id=account,
            ),
            metadata=pos,
        )
        ledger.GetBalance(pb.GetBalanceRequest(member_account_id=account), metadata=pos)
        ledger.GetEntry(
            pb.GetEntryRequest(sequence=earned.entry.sequence, purpose="customer_support"),
            metadata=staff,
        )
        ledger.ListEntries(
            pb.ListEntriesRequest(member_account_id=account, purpose="fraud_investigation"),
            metadata=staff,
        )
        for purpose in ("customer_support", "redemption_delivery", "legal_request"):
            members.GetMember(
                mpb.GetMemberRequest(member_account_id=account, purpose=purpose), metadata=staff
            )
        # invalid requests carrying personal values: refused, never echoed or logged
        for bad in (
            mpb.Profile(name=p["name"], phone=p["phone"] + "99999"),
            mpb.Profile(email=p["email"], custom={"occupation": p["postal_address"]}),
        ):
            with pytest.raises(grpc.RpcError):
                members.Enroll(
                    mpb.EnrollRequest(idempotency_key=key(), context=ctx(), profile=bad),
                    metadata=pos,
                )
        with pytest.raises(grpc.RpcError):
            ledger.Earn(
                pb.EarnRequest(
                    idempotency_key=key(),
                    context=ctx(external=p["email"]),
                    member_account_id=account,
                    points=1,
                ),
                metadata=pos,
            )
    # an update, a break-glass read, and erasures
    members.UpdateMember(
        mpb.UpdateMemberRequest(
            member_account_id=accounts[0],
            profile=mpb.Profile(postal_address=person(0)["postal_address"] + " Apt 1"),
            fields=["postal_address"],
        ),
        metadata=staff,
    )
    access.ListPurposes(apb.ListPurposesRequest(), metadata=staff)
    access.GrantBreakGlass(
        apb.GrantBreakGlassRequest(
            grantee="analyst-9", reason="incident T-7 review", duration_seconds=120
        ),
        metadata=md(Role.ADMIN, "admin-1"),
    )
    members.GetMember(
        mpb.GetMemberRequest(member_account_id=accounts[1], purpose="break_glass"),
        metadata=md(Role.ANALYST, "analyst-9"),
    )
    for account in accounts[:3]:
        members.EraseMember(
            mpb.EraseMemberRequest(
                idempotency_key=key(),
                member_account_id=account,
                reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
            ),
            metadata=md(Role.KEY_CUSTODIAN),
        )


def _pg_dump(db_url: str, request: pytest.FixtureRequest) -> bytes:
    cluster = request.getfixturevalue("pg_cluster")
    host_port, name = db_url.rsplit("@", 1)[1].split("/")
    host, port = host_port.split(":")
    out = subprocess.run(
        [str(cluster.bin_dir / "pg_dump"), "-h", host, "-p", port, "-U", "postgres", name],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out.stdout
