"""docs/data-inventory.md is exactly what `minimization report` prints, and
the inventory covers every table the schema creates."""

from __future__ import annotations

from pathlib import Path

import pytest

from access.inventory import INVENTORY, member_fields
from ledger.cli import main as cli
from ledger.storage.schema import metadata

ROOT = Path(__file__).resolve().parent.parent


def test_doc_matches_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--log-level", "error", "minimization", "report"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "data-inventory.md").read_text(), (
        "regenerate: loyalty-ledger minimization report > docs/data-inventory.md"
    )


def test_every_table_is_inventoried() -> None:
    stored = set(metadata.tables) - {"journal_head", "access_head"}  # heads: derived
    assert {f.table for f in (*INVENTORY, *member_fields())} == stored


def test_configured_fields_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--log-level", "error", "minimization", "report", "--member-field", "shoe_size"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "| member_fields | shoe_size (AES-256-GCM" in out
    assert "legal_request" in out.split("shoe_size", 1)[1].splitlines()[0]
