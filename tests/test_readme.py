"""The README's first-call example runs against a real server, and the
README shows exactly that file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.server import LedgerServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "first_call.py"


def test_readme_embeds_the_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_first_call_example_runs(server: LedgerServer) -> None:
    env = dict(os.environ, LEDGER_ADDRESS=f"127.0.0.1:{server.port}")
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert ": 100 points (as of entry 2)" in out.stdout
    # run twice: the idempotency keys make the second run a pure replay
    again = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.stdout == out.stdout
