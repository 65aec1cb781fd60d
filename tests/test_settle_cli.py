"""`loyalty-ledger settle`: the job form of the sweep every server runs.
Idempotent, and safe when several run at once (two processes here)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from loyalty.ledger.v1 import ledger_pb2 as pb

from tests.support.process import cli_path
from tests.support.program import PROGRAM, ProgramServer


def _settle(db_url: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            cli_path(),
            "--log-level",
            "error",
            "settle",
            "--data-dir",
            str(tmp_path),
            "--database-url",
            db_url,
            "--program",
            str(tmp_path / "program.toml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_settle_job_twice_at_once_posts_once(db_url: str, tmp_path: Path) -> None:
    # a day in the past: by the real clock the CLI uses, everything is due
    past = dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
    ps = ProgramServer(db_url, tmp_path, program=PROGRAM, start=past)
    try:
        members = [ps.open() for _ in range(3)]
        for member in members:
            ps.earn(member, 100)  # expires 2025-01-10
            ps.hold(member, 30, minutes=5)
        ps.purchase(members[0], 20_000, "appliance", points=40)  # pending 30 days
        before = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=members[0]))
    finally:
        ps.close()
    runs = [_settle(db_url, tmp_path), _settle(db_url, tmp_path)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    settled = sorted(int(out.split()[-2]) for out in outputs)
    assert sum(settled) >= 3, outputs  # between them they settled everyone
    again = _settle(db_url, tmp_path)
    assert again.communicate(timeout=120)[0].strip() == "settled 0 members"
    ps = ProgramServer(db_url, tmp_path, program=PROGRAM)
    try:
        for member in members:
            b = ps.balance(member)
            assert (b.points, b.held) == (0, 0)  # released, then expired
        after = ps.stub.ListEntries(pb.ListEntriesRequest(member_account_id=members[0]))
        kinds = [e.kind for e in after.entries[: len(after.entries) - len(before.entries)]]
        # one release, one mature, one expire: the second job found nothing left
        assert sorted(kinds) == sorted(
            [pb.ENTRY_KIND_RELEASE, pb.ENTRY_KIND_MATURE, pb.ENTRY_KIND_EXPIRE]
        ), kinds
        ps.verify()
    finally:
        ps.close()
