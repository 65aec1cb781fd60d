"""Erasure that reaches the disk (issue 13, item 7).

Crypto-shredding deletes an erased member's wrapped data keys, field
ciphertexts and lookup tokens. Deleted is not gone: SQLite leaves the old
page images in ``ledger.db-wal`` and the deleted cells in the page unless
told otherwise, and every copy (a backup, a WAL archive, a PostgreSQL dead
tuple) keeps the wrapped keys. These tests read the database files as an
attacker with the keyring would, and check the compliance report's
erasure window (docs/field-encryption.md, "Erasure on disk")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from loyalty.members.v1 import members_pb2 as mpb

from access.principal import Role
from ledger.keys.keyring import FileKeyring
from ledger.members import rotation
from ledger.members.vault import MemberVault
from ledger.reports.compliance_report import build_compliance_report
from ledger.storage.members import MemberStore
from tests.conftest import ctx, key
from tests.test_auth_matrix import Secured
from tests.test_members import md

MEMBERS = 20


def _profile(n: int) -> mpb.Profile:  # obviously fake
    return mpb.Profile(
        name=f"Test Person {n:02d}",
        phone=f"+86 138 0013 {8000 + n}",
        email=f"test.person.{n:02d}@example.invalid",
        birth_date="1990-01-31",
        postal_address=f"{n} Test Road, Testville",
    )


def _enroll_all(s: Secured, first: int = 0) -> list[str]:
    return [
        s.members.Enroll(
            mpb.EnrollRequest(idempotency_key=key("enroll"), context=ctx(), profile=_profile(n)),
            metadata=md(s, Role.CHANNEL),
        ).member_account_id
        for n in range(first, first + MEMBERS)
    ]


def _erase_all(s: Secured, accounts: list[str]) -> None:
    custodian = md(s, Role.KEY_CUSTODIAN)
    for account in accounts:
        s.members.EraseMember(
            mpb.EraseMemberRequest(
                idempotency_key=key("erase"),
                member_account_id=account,
                reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
            ),
            metadata=custodian,
        )


def _secrets(s: Secured, accounts: list[str]) -> list[bytes]:
    """Every wrapped data key and field ciphertext of ``accounts``."""
    assert s.server.db is not None
    marks = ", ".join(f"'{a}'" for a in accounts)
    with s.server.db.reader.connect() as conn:
        keys = conn.execute(
            sa.text(f"SELECT wrapped FROM member_keys WHERE account_id IN ({marks})")
        ).scalars()
        fields = conn.execute(
            sa.text(f"SELECT ciphertext FROM member_fields WHERE account_id IN ({marks})")
        ).scalars()
        return [bytes(b) for b in [*keys, *fields]]


def _on_disk(files: list[Path], secrets: list[bytes]) -> int:
    """How many secrets occur (as their first 24 bytes, past any common
    header) in the files' raw bytes."""
    data = b"".join(f.read_bytes() for f in files if f.exists())
    return sum(1 for blob in secrets if blob[-24:] in data)


def test_erased_keys_and_fields_are_not_in_the_database_files(tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    s = Secured(f"sqlite:///{db_path}", tmp_path)
    try:
        accounts = _enroll_all(s)
        kept = _enroll_all(s, first=MEMBERS)  # members not erased: their data stays
        secrets = _secrets(s, accounts)
        kept_secrets = _secrets(s, kept)
        assert len(secrets) == MEMBERS * 6  # a data key and five fields each
        files = [db_path, Path(f"{db_path}-wal")]
        # the scan finds what is there: before the erasure, all of it
        assert _on_disk(files, secrets) == len(secrets)
        _erase_all(s, accounts)
        # answered means gone: not in the database file, not in the WAL
        assert _on_disk(files, secrets) == 0
        assert _on_disk(files, kept_secrets) == len(kept_secrets)
    finally:
        s.close()
    assert _on_disk(files, secrets) == 0


def test_erasure_window_in_the_compliance_report(db_url: str, tmp_path: Path) -> None:
    s = Secured(db_url, tmp_path)
    try:
        assert s.server.db is not None
        db = s.server.db
        keyring = FileKeyring.open(s.config.keyring_path)
        now = lambda: int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)  # noqa: E731
        accounts = _enroll_all(s)[:3]
        _erase_all(s, accounts)
        window = build_compliance_report(db, keyring, s.config, now_us=now())["erasures"]["window"]
        # their keys were wrapped under KEK v1, still in the keyring: a
        # backup taken before the erasure can still open them
        assert window["inside"] == 3 and window["lowest_active_kek"] == 1
        assert window["oldest_inside"] is not None and window["kek_version_unknown"] == 0

        # rotate, rewrap the others, retire v1: every copy of the erased
        # members' keys is now wrapped under a KEK that no longer exists
        assert keyring.rotate() == 2
        store = MemberStore(db)
        rotation.rewrap(store, MemberVault.for_keyring(keyring))
        assert store.kek_versions_in_use().get(1, 0) == 0
        keyring.retire(1)
        window = build_compliance_report(db, keyring, s.config, now_us=now())["erasures"]["window"]
        assert window["inside"] == 0 and window["lowest_active_kek"] == 2

        # an erasure after the rotation is inside the new window
        later = _enroll_all(s, first=MEMBERS)[:1]
        _erase_all(s, later)
        window = build_compliance_report(db, keyring, s.config, now_us=now())["erasures"]["window"]
        assert window["inside"] == 1
    finally:
        s.close()


def test_erasure_records_the_kek_version(db_url: str, tmp_path: Path) -> None:
    s = Secured(db_url, tmp_path)
    try:
        erased = 2
        _erase_all(s, _enroll_all(s)[:erased])
        assert s.server.db is not None
        with s.server.db.reader.connect() as conn:
            rows = conn.execute(sa.text("SELECT kek_version FROM member_erasures")).scalars().all()
        assert rows == [1] * erased
    finally:
        s.close()
