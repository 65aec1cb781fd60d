"""The reports end to end: a real server is used, then the CLI writes the
access and compliance reports (JSON, CSV, HTML) and the analytics export,
and security fetches the access report over gRPC. Each run is recorded in
the access log."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.audit.v1 import audit_pb2 as upb
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.members.v1 import members_pb2 as mpb

from access.principal import Role
from ledger.cli import main as cli
from tests.conftest import ctx, key
from tests.test_auth_matrix import Secured, _auth


def _use(s: Secured) -> str:
    pos = _auth(s.token(Role.CHANNEL))
    staff = _auth(s.token(Role.MEMBER_SERVICE))
    account = s.members.Enroll(
        mpb.EnrollRequest(
            idempotency_key=key(),
            context=ctx("staff"),
            profile=mpb.Profile(name="Test Person", email="test-person-1@example.invalid"),
        ),
        metadata=staff,
    ).member_account_id
    s.stub.Earn(
        pb.EarnRequest(idempotency_key=key(), context=ctx(), member_account_id=account, points=50),
        metadata=pos,
    )
    s.members.GetMember(
        mpb.GetMemberRequest(member_account_id=account, purpose="customer_support"), metadata=staff
    )
    with pytest.raises(grpc.RpcError):  # a denial
        s.members.EraseMember(
            mpb.EraseMemberRequest(
                idempotency_key=key(),
                member_account_id=account,
                reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
            ),
            metadata=staff,
        )
    return account


def _args(s: Secured) -> list[str]:
    return [
        "--data-dir",
        str(s.config.data_dir),
        "--database-url",
        s.config.database_url,
        "--keyring",
        str(s.config.keyring_path),
    ]


def test_reports_from_the_cli_and_over_grpc(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Secured(db_url, tmp_path)
    now = int(time.time())
    span = {"from": Timestamp(seconds=now - 3600), "to": Timestamp(seconds=now + 3600)}
    try:
        _use(s)
        security = _auth(s.token(Role.SECURITY))
        doc = s.audit.GetAccessReport(
            upb.GetAccessReportRequest(**span, format=upb.REPORT_FORMAT_JSON), metadata=security
        )
        html = s.audit.GetAccessReport(upb.GetAccessReportRequest(**span), metadata=security)
        too_long = upb.GetAccessReportRequest(
            **{"from": Timestamp(seconds=now - 40 * 86400)}, to=Timestamp(seconds=now)
        )
        with pytest.raises(grpc.RpcError) as err:
            s.audit.GetAccessReport(too_long, metadata=security)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("to:")
        with pytest.raises(grpc.RpcError) as err:  # compliance may not read it
            s.audit.GetAccessReport(
                upb.GetAccessReportRequest(**span), metadata=_auth(s.token(Role.COMPLIANCE))
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        s.server.stop(grace=1)
        s.channel.close()
    report = json.loads(doc.body)
    assert doc.content_type == "application/json"
    assert report["totals"]["denied"] >= 1
    assert any(p["role"] == "member_service" and p["members"] == 1 for p in report["by_principal"])
    assert html.content_type.startswith("text/html")
    assert html.body.lower().startswith(b"<!doctype html")
    assert b"Test Person" not in html.body and b"example.invalid" not in html.body

    base = ["--log-level", "error"]
    window = ["--from", _iso(now - 3600), "--to", _iso(now + 3600)]
    out = tmp_path / "access.json"
    assert (
        cli(
            [
                *base,
                "report",
                "access",
                *_args(s),
                *window,
                "--format",
                "json",
                "--out",
                str(out),
                "--principal",
                "security-test",
            ]
        )
        == 0
    )
    first = json.loads(out.read_text())
    assert first["totals"]["records"] >= report["totals"]["records"]
    # the run itself is in the access log: the next report sees it
    assert (
        cli(
            [
                *base,
                "report",
                "access",
                *_args(s),
                *window,
                "--format",
                "csv",
                "--out",
                str(tmp_path / "access.csv"),
            ]
        )
        == 0
    )
    rows = list(csv.reader(io.StringIO((tmp_path / "access.csv").read_text())))
    assert any("security-test" in row for row in rows)
    assert (
        cli([*base, "report", "access", *_args(s), *window, "--out", str(tmp_path / "access.html")])
        == 0
    )
    assert (tmp_path / "access.html").read_text().lower().startswith("<!doctype html")
    assert (
        cli(
            [
                *base,
                "report",
                "compliance",
                *_args(s),
                "--format",
                "json",
                "--out",
                str(tmp_path / "compliance.json"),
            ]
        )
        == 0
    )
    compliance = json.loads((tmp_path / "compliance.json").read_text())
    assert compliance["journal"]["verified"] and compliance["access_log"]["verified"]
    assert compliance["journal"]["zero_sum"]
    assert compliance["liability"]["outstanding"] == 50
    assert compliance["keys"] and compliance["keys"][0]["status"] == "active"
    assert (
        cli([*base, "report", "compliance", *_args(s), "--out", str(tmp_path / "compliance.html")])
        == 0
    )
    capsys.readouterr()
    assert (
        cli([*base, "export", "analytics", *_args(s), "--out", str(tmp_path / "a.csv"), "--k", "2"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["members_seen"] == 1 and summary["rows_written"] == 0  # 1 < k: suppressed
    assert (
        cli([*base, "export", "analytics", *_args(s), "--out", str(tmp_path / "b.csv"), "--k", "1"])
        == 2
    )
    # every run above is an access-log event
    assert (
        cli([*base, "report", "access", *_args(s), *window, "--format", "json", "--out", str(out)])
        == 0
    )
    methods = {p["principal"] for p in json.loads(out.read_text())["by_principal"]}
    assert {"security-test", "cli"} <= methods


def _iso(seconds: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat()
