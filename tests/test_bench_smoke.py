"""The benchmark still runs end to end (``--quick``). It asserts that the
run completes and the journal verifies, never a speed: speed is for
bench/, on a quiet machine, compared with its in-run ceiling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_bench_quick_runs_and_verifies(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_earn.py"),
            "--quick",
            "--tmp-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "RESULT: OK" in out.stdout
    assert "journal verify: exit 0" in out.stdout


def test_bench_serve_quick_runs_and_verifies(tmp_path: Path) -> None:
    """The secure-default benchmark (TLS, tokens, workers) end to end."""
    summary_path = tmp_path / "summary.json"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_serve.py"),
            "--quick",
            "--seconds",
            "1",
            "--warmup",
            "0.5",
            "--accounts",
            "50",
            "--tmp-dir",
            str(tmp_path),
            "--json",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    import json

    summary = json.loads(summary_path.read_text())
    assert summary["verify"]["ok"] and summary["verify"]["nothing_lost"]
    for op in ("earn", "balance"):
        assert summary["ops"][op]["errors"] == 0
        assert summary["ops"][op]["ledger_per_s"] > 0
    assert "cores" in out.stdout


def test_bench_ingest_runs_end_to_end(tmp_path: Path) -> None:
    """The bulk-path benchmark: a small history through `import`, then
    `verify` and `audit verify` of what it built (both must pass)."""
    summary = tmp_path / "bulk.json"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_ingest.py"),
            "--lines",
            "3000",
            "--json",
            str(summary),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    import json

    result = json.loads(summary.read_text())
    assert result["import"]["entries_added"] > 2500
    assert result["verify"]["entries_per_s"] > 0 and result["audit_verify"]["entries_per_s"] > 0
