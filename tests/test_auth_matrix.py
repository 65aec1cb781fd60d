"""Every RPC as every role, and every kind of bad credential, over a real
TLS server started with ``auth="tokens"`` (tests/test_mtls.py covers
client certificates). Expectations come from
tests/test_permissions.py's EXPECTED table, written independently of
access/permissions.py, so changing one without the other fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.access.v1 import access_pb2 as apb
from loyalty.access.v1 import access_pb2_grpc
from loyalty.audit.v1 import audit_pb2 as upb
from loyalty.audit.v1 import audit_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc
from loyalty.rewards.v1 import rewards_pb2 as rpb
from loyalty.rewards.v1 import rewards_pb2_grpc

from access.certs import make_dev_certs
from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from ledger.commands import new_member_account_id
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from tests.conftest import ctx, head_sequence, key
from tests.test_permissions import EXPECTED

GATE_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


class Secured:
    """A server with token auth, its signing key, and a revoked token."""

    def __init__(self, db_url: str, tmp_path: Path, clock: Callable[[], int] | None = None) -> None:
        certs = tmp_path / "certs"
        make_dev_certs(certs)
        self.config = ServerConfig(
            data_dir=tmp_path,
            database_url=db_url,
            listen="127.0.0.1:0",
            auth="tokens",
            tls_cert=certs / "server.pem",
            tls_key=certs / "server.key",
        )
        self.issuer = TokenIssuer(load_or_create_signing_key(self.config.token_key_path))
        revoked = self.token(Role.CHANNEL, channel="pos-test")
        self.revoked = revoked
        self.config.revocations_path.write_text(self._jti(revoked) + "\n")
        self.server = LedgerServer(self.config, clock=clock) if clock else LedgerServer(self.config)
        self.server.start()
        # TLS, the server certificate checked against the dev CA
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(certs / "ca.pem").read_bytes()
        )
        self.channel = grpc.secure_channel(f"127.0.0.1:{self.server.port}", credentials)
        self.stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.members = members_pb2_grpc.MemberServiceStub(self.channel)
        self.access = access_pb2_grpc.AccessServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.rewards = rewards_pb2_grpc.RewardServiceStub(self.channel)

    def _jti(self, token: str) -> str:
        import jwt

        return str(jwt.decode(token, options={"verify_signature": False})["jti"])

    def token(
        self, role: Role, *, channel: str | None = None, issuer: TokenIssuer | None = None
    ) -> str:
        channel = channel or ("pos-test" if role is Role.CHANNEL else None)
        return (
            (issuer or self.issuer)
            .issue(subject=f"{role.value}-1", role=role, ttl_seconds=600, channel=channel)
            .token
        )

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=1)


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[Secured]:
    s = Secured(db_url, tmp_path)
    yield s
    s.close()


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _calls(s: Secured, account: str, role: Role | None = None) -> dict[str, Callable[..., object]]:
    stub, members, access = s.stub, s.members, s.access
    own = ctx() if role in (None, Role.CHANNEL) else ctx("staff")  # staff act in "staff"
    profile = mpb.Profile(name="Test Person", email="test-person@example.invalid")
    ledger = {
        "OpenAccount": lambda md: stub.OpenAccount(
            pb.OpenAccountRequest(idempotency_key=key(), context=ctx()), metadata=md
        ),
        "Earn": lambda md: stub.Earn(
            pb.EarnRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, points=1
            ),
            metadata=md,
        ),
        "Redeem": lambda md: stub.Redeem(
            pb.RedeemRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, points=1
            ),
            metadata=md,
        ),
        "Reverse": lambda md: stub.Reverse(
            pb.ReverseRequest(
                idempotency_key=key(),
                context=ctx(),
                original_sequence=1,
                points=1,
                member_account_id=account,
            ),
            metadata=md,
        ),
        "GetBalance": lambda md: stub.GetBalance(
            pb.GetBalanceRequest(member_account_id=account), metadata=md
        ),
        "GetEntry": lambda md: stub.GetEntry(pb.GetEntryRequest(sequence=1), metadata=md),
        "ListEntries": lambda md: stub.ListEntries(
            pb.ListEntriesRequest(member_account_id=account), metadata=md
        ),
        "Hold": lambda md: stub.Hold(
            pb.HoldRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, points=1
            ),
            metadata=md,
        ),
        "CaptureHold": lambda md: stub.CaptureHold(
            pb.CaptureHoldRequest(
                idempotency_key=key(), context=ctx(), hold_sequence=1, member_account_id=account
            ),
            metadata=md,
        ),
        "ReleaseHold": lambda md: stub.ReleaseHold(
            pb.ReleaseHoldRequest(
                idempotency_key=key(), context=ctx(), hold_sequence=1, member_account_id=account
            ),
            metadata=md,
        ),
        "Transfer": lambda md: stub.Transfer(
            pb.TransferRequest(
                idempotency_key=key(),
                context=ctx(),
                member_account_id=account,
                to_member_account_id=new_member_account_id(),
                points=1,
            ),
            metadata=md,
        ),
        "ExchangeOut": lambda md: stub.ExchangeOut(
            pb.ExchangeOutRequest(
                idempotency_key=key(),
                context=ctx(),
                member_account_id=account,
                partner_id="hotel-test",
                points=1,
            ),
            metadata=md,
        ),
        "ExchangeIn": lambda md: stub.ExchangeIn(
            pb.ExchangeInRequest(
                idempotency_key=key(),
                context=ctx(),
                member_account_id=account,
                partner_id="hotel-test",
                partner_units=1,
            ),
            metadata=md,
        ),
        "ReplayOffline": lambda md: stub.ReplayOffline(
            pb.ReplayOfflineRequest(
                items=[
                    pb.ReplayItem(
                        occurred_at=Timestamp(seconds=1_700_000_000),
                        redeem=pb.RedeemRequest(
                            idempotency_key=key(),
                            context=ctx(),
                            member_account_id=account,
                            points=1,
                        ),
                    )
                ]
            ),
            metadata=md,
        ),
        "GetLiability": lambda md: stub.GetLiability(pb.GetLiabilityRequest(), metadata=md),
        "Refer": lambda md: stub.Refer(
            pb.ReferRequest(
                idempotency_key=key(),
                context=ctx(),
                member_account_id=account,
                referred_member_account_id=new_member_account_id(),
            ),
            metadata=md,
        ),
        "GetTier": lambda md: stub.GetTier(
            pb.GetTierRequest(member_account_id=account), metadata=md
        ),
    }
    member_calls: dict[str, Callable[..., object]] = {
        "Enroll": lambda md: members.Enroll(
            mpb.EnrollRequest(idempotency_key=key(), context=own, profile=profile), metadata=md
        ),
        "UpdateMember": lambda md: members.UpdateMember(
            mpb.UpdateMemberRequest(
                member_account_id=account, profile=mpb.Profile(name="Test Renamed"), fields=["name"]
            ),
            metadata=md,
        ),
        "GetMember": lambda md: members.GetMember(
            mpb.GetMemberRequest(member_account_id=account, purpose="fraud_investigation"),
            metadata=md,
        ),
        "FindMember": lambda md: members.FindMember(
            mpb.FindMemberRequest(email="test-person@example.invalid"), metadata=md
        ),
        "EraseMember": lambda md: members.EraseMember(
            mpb.EraseMemberRequest(
                idempotency_key=key(),
                member_account_id=new_member_account_id(),
                reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
            ),
            metadata=md,
        ),
    }
    access_calls: dict[str, Callable[..., object]] = {
        "ListPurposes": lambda md: access.ListPurposes(apb.ListPurposesRequest(), metadata=md),
        "GrantBreakGlass": lambda md: access.GrantBreakGlass(
            apb.GrantBreakGlassRequest(
                grantee=f"staff-{key()}", reason="test outage ticket T-1", duration_seconds=600
            ),
            metadata=md,
        ),
        "EndBreakGlass": lambda md: access.EndBreakGlass(
            apb.EndBreakGlassRequest(grant_id="bg_0000000000000000"), metadata=md
        ),
        "ListBreakGlass": lambda md: access.ListBreakGlass(
            apb.ListBreakGlassRequest(), metadata=md
        ),
    }
    audit = s.audit
    journal = upb.LOG_JOURNAL
    audit_calls: dict[str, Callable[..., object]] = {
        "GetCheckpoint": lambda md: audit.GetCheckpoint(
            upb.GetCheckpointRequest(log=journal), metadata=md
        ),
        "CreateCheckpoint": lambda md: audit.CreateCheckpoint(
            upb.CreateCheckpointRequest(log=journal), metadata=md
        ),
        "GetInclusionProof": lambda md: audit.GetInclusionProof(
            upb.GetInclusionProofRequest(log=journal, sequence=1), metadata=md
        ),
        "GetConsistencyProof": lambda md: audit.GetConsistencyProof(
            upb.GetConsistencyProofRequest(log=journal, size1=1, size2=1), metadata=md
        ),
        "GetEntries": lambda md: audit.GetEntries(
            upb.GetEntriesRequest(log=journal, start=1, count=1), metadata=md
        ),
        "GetAccessReport": lambda md: audit.GetAccessReport(
            upb.GetAccessReportRequest(
                **{"from": Timestamp(seconds=1_700_000_000)},
                to=Timestamp(seconds=1_700_086_400),
                format=upb.REPORT_FORMAT_JSON,
            ),
            metadata=md,
        ),
    }
    rewards = s.rewards
    fake_code = "0000-0000-0000-0000-0000-0"  # well formed, never issued
    reward_calls: dict[str, Callable[..., object]] = {
        "ListRewards": lambda md: rewards.ListRewards(rpb.ListRewardsRequest(), metadata=md),
        "ClaimReward": lambda md: rewards.ClaimReward(
            rpb.ClaimRewardRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, reward_id="none"
            ),
            metadata=md,
        ),
        "GetVoucher": lambda md: rewards.GetVoucher(
            rpb.GetVoucherRequest(code=fake_code), metadata=md
        ),
        "RedeemVoucher": lambda md: rewards.RedeemVoucher(
            rpb.RedeemVoucherRequest(idempotency_key=key(), context=ctx(), code=fake_code),
            metadata=md,
        ),
        "CancelVoucher": lambda md: rewards.CancelVoucher(
            rpb.CancelVoucherRequest(
                idempotency_key=key(), context=ctx(), member_account_id=account, voucher_sequence=1
            ),
            metadata=md,
        ),
        "ListVouchers": lambda md: rewards.ListVouchers(
            rpb.ListVouchersRequest(member_account_id=account), metadata=md
        ),
    }
    return {
        **{f"RewardService/{n}": c for n, c in reward_calls.items()},
        **{f"AuditService/{n}": c for n, c in audit_calls.items()},
        **{f"LedgerService/{n}": c for n, c in ledger.items()},
        **{f"MemberService/{n}": c for n, c in member_calls.items()},
        **{f"AccessService/{n}": c for n, c in access_calls.items()},
    }


def _code(call: Callable[..., object], metadata: object) -> tuple[grpc.StatusCode, str]:
    try:
        call(metadata)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def _seed(s: Secured) -> str:
    pos = _auth(s.token(Role.CHANNEL))
    account = s.stub.OpenAccount(
        pb.OpenAccountRequest(idempotency_key=key(), context=ctx()), metadata=pos
    ).member_account_id
    s.stub.Earn(
        pb.EarnRequest(idempotency_key=key(), context=ctx(), member_account_id=account, points=100),
        metadata=pos,
    )
    return account


def test_every_rpc_as_every_role(secured: Secured) -> None:
    account = _seed(secured)
    assert sorted(_calls(secured, account)) == sorted(EXPECTED)
    failures = []
    for role in Role:
        for method, call in _calls(secured, account, role).items():
            code, details = _code(call, _auth(secured.token(role)))
            if role in EXPECTED[method]:
                ok = code not in GATE_CODES
            else:
                ok = (
                    code == grpc.StatusCode.PERMISSION_DENIED
                    and f"{role.value} may not call" in details
                )
            if not ok:
                failures.append(f"{method} as {role.value}: {code.name} {details}")
    assert failures == []


def test_bad_credentials_on_every_rpc(secured: Secured) -> None:
    account = _seed(secured)
    seq = head_sequence(secured.server)
    stranger = TokenIssuer(Ed25519PrivateKey.generate())
    expired = TokenIssuer(secured.issuer.key, clock=lambda: 1_000_000_000.0)
    cases = {
        "none": ((), grpc.StatusCode.UNAUTHENTICATED, "credentials: missing"),
        "not_bearer": (
            (("authorization", "Basic cG9zOnNlY3JldA=="),),
            grpc.StatusCode.UNAUTHENTICATED,
            "credentials: malformed",
        ),
        "garbage": (_auth("garbage"), grpc.StatusCode.UNAUTHENTICATED, "token: malformed"),
        "expired": (
            _auth(secured.token(Role.CHANNEL, issuer=expired)),
            grpc.StatusCode.UNAUTHENTICATED,
            "token: expired",
        ),
        "forged": (
            _auth(secured.token(Role.CHANNEL, issuer=stranger)),
            grpc.StatusCode.UNAUTHENTICATED,
            "token: signed by an unknown key",
        ),
        "revoked": (_auth(secured.revoked), grpc.StatusCode.UNAUTHENTICATED, "token: revoked"),
    }
    failures = []
    for method, call in _calls(secured, account).items():
        for name, (metadata, want, text) in cases.items():
            code, details = _code(call, metadata)
            if code != want or text not in details:
                failures.append(f"{method} with {name}: {code.name} {details}")
    assert failures == []
    assert head_sequence(secured.server) == seq  # nothing refused left a trace


def test_channel_principal_cannot_act_for_another_channel(secured: Secured) -> None:
    account = _seed(secured)
    seq = head_sequence(secured.server)
    app = _auth(secured.token(Role.CHANNEL, channel="app-test"))
    methods = ("OpenAccount", "Earn", "Redeem", "Reverse", "Hold", "ReplayOffline", "Enroll")
    for method in methods:  # context pos-test
        service = "MemberService" if method == "Enroll" else "LedgerService"
        code, details = _code(_calls(secured, account)[f"{service}/{method}"], app)
        assert code == grpc.StatusCode.PERMISSION_DENIED, (method, details)
        assert "only for its own channel" in details
    assert head_sequence(secured.server) == seq


def test_health_needs_no_credentials(secured: Secured) -> None:
    health = health_pb2_grpc.HealthStub(secured.channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_reflection_needs_credentials(secured: Secured) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(secured.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ServerReflectionInfo(iter([request])))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (listed,) = stub.ServerReflectionInfo(
        iter([request]), metadata=_auth(secured.token(Role.ANALYST))
    )
    names = {s.name for s in listed.list_services_response.service}
    assert {"loyalty.members.v1.MemberService", "loyalty.access.v1.AccessService"} <= names


def test_refused_credentials_of_ours_are_recorded_with_whose_they_claim_to_be(
    secured: Secured,
) -> None:
    """Issue 13, item 10: a replayed revoked or expired token was recorded as
    (anonymous), so security could not see whose credential it was. A token
    whose signature verifies names its subject and token id, marked
    unverified; a forged one (any subject can be written into it) does not."""
    import sqlalchemy as sa

    stranger = TokenIssuer(Ed25519PrivateKey.generate())
    expired = TokenIssuer(secured.issuer.key, clock=lambda: 1_000_000_000.0)
    calls = {
        "revoked": secured.revoked,
        "expired": expired.issue(
            subject="staff-expired-1", role=Role.MEMBER_SERVICE, ttl_seconds=60
        ).token,
        "forged": stranger.issue(
            subject="staff-framed-1", role=Role.MEMBER_SERVICE, ttl_seconds=600
        ).token,
    }
    for token in calls.values():
        code, _ = _code(
            lambda md: secured.stub.GetBalance(
                pb.GetBalanceRequest(member_account_id="mbr_" + "a" * 26), metadata=md
            ),
            _auth(token),
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
    assert secured.server.db is not None
    with secured.server.db.reader.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT principal, role, reason FROM access_log WHERE decision = 'deny'")
        ).all()
    by_reason = {r.split(" (")[0]: (p, role, r) for p, role, r in rows}
    principal, role, reason = by_reason["token: revoked"]
    assert principal == "unverified:channel-1" and role == ""
    assert f"(token id {secured._jti(secured.revoked)})" in reason
    principal, _, reason = by_reason["token: expired"]
    assert principal == "unverified:staff-expired-1" and "(token id " in reason
    principal, _, reason = by_reason["token: signed by an unknown key"]
    assert principal == "" and "staff-framed-1" not in reason
