"""Hostile tests of the reports (issue #7), from a review: each failed
before its fix; the comment in each states the rule."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.audit.v1 import audit_pb2 as upb

from access.principal import Role
from audit.decisions import AccessDecision
from ledger.cli import main as cli
from ledger.commands import new_member_account_id
from ledger.reports.access_report import HOUR_US, ReportRules, _Scan
from ledger.storage.schema import access_log
from tests.test_access_report import DAY, GET_MEMBER, History, _us
from tests.test_auth_matrix import Secured, _auth

_ids = itertools.count()


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path)
    yield h
    h.close()


def _row(seq: int, time_us: int, **kw: str) -> SimpleNamespace:
    base = dict(
        seq=seq,
        time_us=time_us,
        request_id=f"r{seq}",
        principal="agent",
        role="member_service",
        method=GET_MEMBER,
        decision="allow",
        reason="",
        purpose="customer_support",
        member_account_id="mbr_x",
        fields="phone",
    )
    base.update(kw)
    return SimpleNamespace(**base)


# ---------------------------------------------------------------- access report correctness


def test_denial_last_seq_is_the_real_last_denial_past_the_evidence_cap(history: History) -> None:
    # denials[].last_seq is the sequence of the last denial of that key, not the 50th one
    history.at(DAY.replace(hour=11))
    for _ in range(60):
        history.access(
            "probe-1", "channel", GET_MEMBER, decision="deny", reason="role: channel may not call"
        )
    report = history.report()
    with history.db.reader.connect() as conn:
        last = conn.execute(
            sa.select(sa.func.max(access_log.c.seq)).where(access_log.c.principal == "probe-1")
        ).scalar_one()
    (row,) = report["denials"]
    assert row["count"] == 60
    assert row["last_seq"] == last


def test_bulk_read_found_when_the_role_has_two_principals(history: History) -> None:
    # the thief's own day is not its baseline; 300 members vs a colleague's 6 is bulk_read
    history.at(DAY.replace(hour=10))
    for _ in range(6):
        history.access(
            "agent-0",
            "member_service",
            GET_MEMBER,
            new_member_account_id(),
            purpose="customer_support",
            fields="phone",
        )
    history.at(DAY.replace(hour=14))
    for _ in range(300):
        history.access(
            "agent-1",
            "member_service",
            GET_MEMBER,
            new_member_account_id(),
            purpose="customer_support",
            fields="phone",
        )
    report = history.report()
    kinds = {(f["kind"], f["principal"]) for f in report["findings"]}
    assert ("bulk_read", "agent-1") in kinds, sorted(kinds)


def _grant_event(h: History, when: dt.datetime, decision: str, reason: str) -> None:
    h.at(when)
    h.appender.record_blocking(
        AccessDecision(
            time_us=h.now,
            request_id="bg_00000000deadbeef",
            principal="agent-5",
            role="",
            method="break-glass",
            decision=decision,
            reason=reason,
            purpose="break_glass",
        )
    )


def test_break_glass_reads_in_span_under_a_grant_started_before_it(history: History) -> None:
    # a grant open during the span is listed with the break-glass reads made under it
    span_start = DAY - dt.timedelta(days=1)  # History.report() covers [DAY-1d, DAY+3d)
    _grant_event(
        history,
        span_start - dt.timedelta(minutes=30),
        "start",
        "grant bg_00000000deadbeef by admin-1 until 0",
    )
    history.at(span_start + dt.timedelta(minutes=10))
    for _ in range(2):
        history.access(
            "agent-5",
            "member_service",
            GET_MEMBER,
            new_member_account_id(),
            purpose="break_glass",
            fields="phone,email,birth_date",
            reason="break_glass:bg_00000000deadbeef",
        )
    _grant_event(
        history,
        span_start + dt.timedelta(minutes=30),
        "end",
        "grant bg_00000000deadbeef ended by agent-5",
    )
    report = history.report()
    grants = {g["grant_id"]: g for g in report["break_glass"]}
    assert "bg_00000000deadbeef" in grants
    assert grants["bg_00000000deadbeef"]["reads"] == 2, grants


# ---------------------------------------------------------------- bounded memory / time


def _scan_peak(n: int) -> int:
    t0 = _us(DAY.replace(hour=10))
    rows = [_row(i + 1, t0 + i) for i in range(n)]  # one principal, one member, one day
    scan = _Scan(ReportRules(), HOUR_US)
    tracemalloc.start()
    try:
        for r in rows:
            scan.feed(r)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_scan_memory_does_not_grow_with_the_number_of_records() -> None:
    # memory bounded by principals/days (docs/reports.md §1), not by records
    small, large = _scan_peak(20_000), _scan_peak(200_000)
    assert large < 3 * small + 1_000_000, (small, large)


def test_denial_burst_scan_is_linear() -> None:
    # 20,000 denials of one principal in one hour are scanned in well under a second
    n = 20_000
    t0 = _us(DAY.replace(hour=10))
    rows = [
        _row(
            i + 1,
            t0 + i * (HOUR_US // (2 * n)),
            principal="probe",
            role="channel",
            decision="deny",
            reason="role: channel may not call",
            purpose="",
            member_account_id="",
            fields="",
        )
        for i in range(n)
    ]
    scan = _Scan(ReportRules(), HOUR_US)
    started = time.perf_counter()
    for r in rows:
        scan.feed(r)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5, f"{elapsed:.1f}s: the burst window is rescanned on every denial"


# ---------------------------------------------------------------- GetAccessReport


def test_get_access_report_out_of_range_timestamps_are_invalid_argument(
    db_url: str, tmp_path: Path
) -> None:
    # a from/to outside 0001..9999 (or past int64 microseconds) is INVALID_ARGUMENT
    s = Secured(db_url, tmp_path)
    security = _auth(s.token(Role.SECURITY))
    cases = {
        "to in year 10000": (253402297200, 253402297200 + 7200),
        "from in year 0": (-62135596800 - 3600, -62135596800 + 3600),
        "past int64 us": (10**13, 10**13 + 3600),
    }
    codes = {}
    try:
        for name, (start, end) in cases.items():
            request = upb.GetAccessReportRequest(
                **{"from": Timestamp(seconds=start)},
                to=Timestamp(seconds=end),
                format=upb.REPORT_FORMAT_JSON,
            )
            try:
                s.audit.GetAccessReport(request, metadata=security)
                codes[name] = grpc.StatusCode.OK
            except grpc.RpcError as err:
                codes[name] = err.code()
    finally:
        s.close()
    assert codes == dict.fromkeys(cases, grpc.StatusCode.INVALID_ARGUMENT), codes


def test_get_access_report_unknown_format_is_invalid_argument(db_url: str, tmp_path: Path) -> None:
    # a newer client's enum number must not silently come back as HTML
    s = Secured(db_url, tmp_path)
    try:
        request = upb.GetAccessReportRequest(
            **{"from": Timestamp(seconds=1_700_000_000)},
            to=Timestamp(seconds=1_700_003_600),
            format=7,  # type: ignore[arg-type]
        )
        with pytest.raises(grpc.RpcError) as err:
            s.audit.GetAccessReport(request, metadata=_auth(s.token(Role.SECURITY)))
    finally:
        s.close()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("format:")


# ---------------------------------------------------------------- CLI


def _cli_args(tmp_path: Path) -> list[str]:
    return [
        "--data-dir",
        str(tmp_path),
        "--database-url",
        f"sqlite:///{tmp_path / 'cli.db'}",
        "--keyring",
        str(tmp_path / "keyring"),
    ]


@pytest.mark.parametrize(
    "window",
    [
        ["--from", "2026-11-01", "--to", "9999-12-31T23:00:00-05:00"],
        ["--from", "0001-01-01T00:00:00+01:00", "--to", "2026-11-01"],
    ],
    ids=["to-past-9999", "from-before-0001"],
)
def test_report_access_out_of_range_window_is_a_clean_error(
    tmp_path: Path, window: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # a --from/--to outside the representable years is a usage error (exit 2, the
    # argument named), not a traceback, and nothing is recorded
    args = ["--log-level", "error", "report", "access", *_cli_args(tmp_path), *window]
    out = ["--format", "json", "--out", str(tmp_path / "a.json")]
    with pytest.raises(SystemExit) as done:
        cli([*args, *out])
    assert done.value.code == 2
    assert "must be between 1970 and 9998" in capsys.readouterr().err


@pytest.mark.parametrize("key_file", ["missing", "directory"])
def test_export_unreadable_link_key_file_is_a_clean_error(tmp_path: Path, key_file: str) -> None:
    # an unreadable --link-key-file exits 2 with FAILED, no traceback
    path = tmp_path / "no-such-key" if key_file == "missing" else tmp_path
    args = ["--log-level", "error", "export", "analytics", *_cli_args(tmp_path)]
    rc = cli([*args, "--out", str(tmp_path / "m.csv"), "--link-key-file", str(path)])
    assert rc == 2
