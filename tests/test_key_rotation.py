"""KEK rotation while requests run: `loyalty-ledger keys rotate` in another
process rewraps every data key; nothing stops decrypting, no field
ciphertext is rewritten, and the old KEK can be retired afterwards."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.members.v1 import members_pb2 as mpb

from tests.support.process import cli_path
from tests.test_auth_matrix import Secured
from tests.test_members import enroll, get


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[Secured]:
    s = Secured(db_url, tmp_path)
    yield s
    s.close()


def _keys_cli(s: Secured, *args: str) -> str:
    out = subprocess.run(
        [
            cli_path(),
            "--log-level",
            "error",
            "keys",
            *args[:1],
            "--data-dir",
            str(s.config.data_dir),
            "--database-url",
            s.config.resolved_database_url(),
            *args[1:],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def _rows(s: Secured, query: str) -> list[sa.Row]:
    assert s.server.db is not None
    with s.server.db.reader.connect() as conn:
        return list(conn.execute(sa.text(query)))


@pytest.mark.slow
def test_rotate_kek_under_load(secured: Secured) -> None:
    counter = iter(range(10_000))

    def profile() -> mpb.Profile:  # one member per e-mail address
        return mpb.Profile(name="Test Rotation", email=f"rotation{next(counter)}@example.invalid")

    before = [enroll(secured, profile()) for _ in range(30)]
    fields_before = {
        (r.account_id, r.field): bytes(r.ciphertext)
        for r in _rows(secured, "SELECT account_id, field, ciphertext FROM member_fields")
    }
    stop = threading.Event()
    errors: list[str] = []
    enrolled: list[str] = []

    def load() -> None:
        while not stop.is_set():
            try:
                enrolled.append(enroll(secured, profile()))
                for account in before[:5]:
                    assert get(secured, account, "legal_request").profile.name == "Test Rotation"
            except (grpc.RpcError, AssertionError) as err:
                errors.append(repr(err))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        out = _keys_cli(secured, "rotate")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert "new KEK version 2" in out
    assert errors == []
    assert enrolled  # the load really ran during the rotation
    # anything wrapped under v1 in the race window is picked up by a rerun
    _keys_cli(secured, "rewrap")
    status = _keys_cli(secured, "status")
    assert "current KEK version: 2" in status and "KEK v1: wraps 0 data key(s)" in status
    _keys_cli(secured, "retire", "1")
    assert {r.kek_version for r in _rows(secured, "SELECT kek_version FROM member_keys")} == {2}
    fields_after = {
        (r.account_id, r.field): bytes(r.ciphertext)
        for r in _rows(secured, "SELECT account_id, field, ciphertext FROM member_fields")
    }
    assert {k: fields_after[k] for k in fields_before} == fields_before  # none rewritten
    for account in before + enrolled:
        assert get(secured, account, "legal_request").profile.name == "Test Rotation"


def test_retire_refuses_a_version_in_use(secured: Secured) -> None:
    enroll(secured, mpb.Profile(email="retire@example.invalid"))
    out = subprocess.run(
        [
            cli_path(),
            "keys",
            "retire",
            "1",
            "--data-dir",
            str(secured.config.data_dir),
            "--database-url",
            secured.config.resolved_database_url(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "still wraps data keys" in out.stderr
