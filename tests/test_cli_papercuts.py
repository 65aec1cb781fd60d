"""What a newcomer tripped over on the command line (issue 14, item 8), each
run as they ran it: the CLI in a subprocess."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import subprocess
from pathlib import Path

import pytest

from ledger.reports.cli import _end_time, _time
from tests.support.process import cli_path, run_cli


def test_report_access_to_includes_its_whole_day() -> None:
    day = _time("2026-12-01")
    assert _end_time("2026-12-01") - day == 86_400_000_000  # to the end of that day
    moment = _time("2026-12-01T09:30")
    assert _end_time("2026-12-01T09:30") == moment + 1  # that moment included
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        _end_time("1/12/2026")


def test_report_access_help_says_what_from_and_to_mean() -> None:
    out = run_cli("report", "access", "--help").stdout
    assert "first moment included" in out and "last moment included" in out
    assert "end of that day" in out


def test_token_issue_prints_expiry_as_a_date(tmp_path: Path) -> None:
    done = run_cli(
        "token", "issue", "--data-dir", str(tmp_path), "--subject", "pos-9", "--role", "channel",
        "--channel", "pos-9", "--ttl", "3600",
    )  # fmt: skip
    tail = done.stderr.strip().rsplit(" expires ", 1)[1]
    expires = dt.datetime.fromisoformat(tail.replace("Z", "+00:00"))
    ahead = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=58) < ahead <= dt.timedelta(hours=1)


def test_public_keys_are_printed_as_audit_verify_takes_them(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    keys = run_cli("audit", "public-key", "--data-dir", data).stdout.splitlines()
    assert len(keys) == 2 and all(" " not in k and "+" in k for k in keys)
    assert {k.split("+")[0].rsplit("/", 1)[1] for k in keys} == {"journal", "access"}
    bundle = tmp_path / "out" / "b.jsonl"  # a directory that does not exist yet
    # as typed (the default log level): its output is text, no JSON log line
    # mixed in (the checkpoints it signs were logged at info), stderr included
    export = subprocess.run(
        [cli_path(), "audit", "export", "--data-dir", data, "--out", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "checkpoint at" in export.stdout
    for line in (export.stdout + export.stderr).splitlines():
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    args = ["audit", "verify", str(bundle)]
    for key in keys:
        args += ["--key", key]
    assert run_cli(*args).stdout.rstrip().endswith("OK")


def test_serving_on_a_port_in_use_is_a_clean_error_with_a_hint(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        done = run_cli(
            "serve", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}",
            "--plaintext", "--auth", "none", check=False,
        )  # fmt: skip
    finally:
        holder.close()
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"FAILED: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--listen HOST:PORT" in done.stderr
